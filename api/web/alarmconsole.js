// The operator's alarm console: new critical alarms flash and sound (a beep made with Web Audio, muted by a
// switch remembered on this device), the tab title counts the unacknowledged ones; and the alarm detail
// page: start, peak, how the severity moved, cleared time and duration, acknowledgements with comments,
// the approved exception that silences it, and its task.

import {get, post} from './api.js';
import {
  ACK_ROLES, SEVERITY_RANK, digitsFor, equipmentName, errorText, loading, pageHeader, personName, roomName,
  sensorInfo, severityChip, taskStateChip, word,
} from './common.js';
import {announce, h, mount, toast} from './dom.js';
import {estateName, manyEstates} from './estatepick.js';
import {fmtDateTime, fmtDuration, fmtNum, has, pick, t} from './i18n.js';

const MUTE_KEY = 'pumpwatch.mute';

/** An alarm type in words: `leak`, `pressure_low`, `temperature_high:dom-p1-temp` (a second rule on one asset). */
export function alarmTypeText(type) {
  const base = String(type || '').split(':')[0];
  if (has(`alarmType.${base}`)) return t(`alarmType.${base}`);
  const found = base.match(/^(\w+)_(high|low)$/);
  if (found) return t(`alarmType.${found[2]}`, {kind: word('sensorKind', found[1])});
  return base;
}

function muted() {
  try { return localStorage.getItem(MUTE_KEY) === '1'; } catch { return false; }
}

let audio = null;
/** Three short beeps (880 Hz), made here: no sound file to fetch, nothing for the CSP to allow. */
function beep() {
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    if (audio.state === 'suspended') audio.resume().catch(() => {});
    const start = audio.currentTime + 0.02;
    for (let i = 0; i < 3; i++) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = 'square';
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, start + i * 0.3);
      gain.gain.exponentialRampToValueAtTime(0.2, start + i * 0.3 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + i * 0.3 + 0.18);
      osc.connect(gain).connect(audio.destination);
      osc.start(start + i * 0.3);
      osc.stop(start + i * 0.3 + 0.2);
    }
    document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
  } catch { /* no audio on this device: the flashing and the title still tell */ }
}

/**
 * The console's part of a live page: `update(alarms)` after each fetch; `button` mutes and unmutes;
 * `stop()` puts the title back. An alarm is new when this page has not seen its id active before.
 */
export function alarmConsole() {
  const seen = new Set();
  let first = true;
  const button = h('button', {type: 'button', class: 'btn btn-quiet mute', id: 'alarm-mute', 'aria-pressed': String(muted())});
  const label = () => {
    button.textContent = muted() ? t('console.unmute') : t('console.mute');
    button.setAttribute('aria-pressed', String(muted()));
    button.dataset.muted = muted() ? 'true' : 'false';
  };
  label();
  button.addEventListener('click', () => {
    try { localStorage.setItem(MUTE_KEY, muted() ? '0' : '1'); } catch { /* private mode */ }
    label();
    if (!muted() && audio && audio.state === 'suspended') audio.resume().catch(() => {});
  });
  const update = (alarms) => {
    const active = alarms.filter((a) => a.state === 'active');
    const fresh = active.filter((a) => !seen.has(a.id) && a.severity === 'critical' && !a.acknowledged_at);
    active.forEach((a) => seen.add(a.id));
    // On the first fetch everything is "new": flash it, but sound only for what arrives while watching.
    if (fresh.length && !first && !muted()) beep();
    if (fresh.length) announce(t('console.new', {n: fresh.length}));
    first = false;
    const waiting = active.filter((a) => !a.acknowledged_at && SEVERITY_RANK[a.severity] >= SEVERITY_RANK.critical).length;
    document.title = waiting ? `(${waiting}) ${t('console.title', {n: waiting})} · ${t('app.title')}` : t('app.title');
    document.body.dataset.unackedCritical = String(waiting);
  };
  return {button, update, stop() { document.title = t('app.title'); delete document.body.dataset.unackedCritical; }};
}

/**
 * The alarm list's estate column: when the list spans several estates (`chosen` is '' and the user's scope
 * holds several), each row's estate by name, before its room. Added to the table `alarmTable` made, so the
 * table of one estate (the board, a room) stays as it is.
 */
export function withEstateColumn(ctx, table, alarms, chosen) {
  if (!manyEstates(ctx) || chosen) return table;
  const byId = new Map(alarms.map((a) => [String(a.id), a]));
  const head = table.querySelector('thead tr');
  const at = (row) => row.children[2] || null; // severity and message come first
  head.insertBefore(h('th', {scope: 'col', 'data-col': 'estate'}, t('alarm.estate')), at(head));
  for (const row of table.querySelectorAll('tbody tr')) {
    const alarm = byId.get(row.dataset.alarmId);
    if (alarm) row.insertBefore(h('td', {'data-estate': alarm.estate}, estateName(ctx, alarm.estate)), at(row));
    else row.querySelectorAll('td[colspan]').forEach((cell) => { cell.colSpan += 1; }); // "no alarms"
  }
  return table;
}

function historyRow(ctx, entry, alarm) {
  const after = entry.after || {};
  const who = entry.actor === 'system' ? t('audit.system') : (entry.actor_name || personName(ctx, Number(entry.actor)));
  const info = alarm.sensor ? sensorInfo(ctx, alarm.sensor, alarm.estate) : undefined;
  const unit = info?.unit || '';
  const digits = digitsFor(info?.kind);
  const bits = [];
  if (after.severity) bits.push(severityChip(after.severity));
  const val = after.peak_value ?? after.last_value;
  if (val != null && typeof val === 'number') bits.push(h('span', {}, ` ${fmtNum(val, digits)} ${unit}`));
  if (after.comment) bits.push(h('q', {class: 'ack-comment'}, after.comment));
  return h('tr', {'data-action': entry.action},
    h('td', {}, fmtDateTime(entry.ts, true)),
    h('td', {}, word('alarmAct', entry.action)),
    h('td', {}, bits),
    h('td', {}, who));
}

/** The alarm detail page: #/alarm/N. */
export async function alarmPage(main, ctx, id) {
  const alarmId = Number(id);
  mount(main, pageHeader(t('alarmDetail.title', {id: alarmId})), loading());
  let stopped = false;
  const render = async () => {
    let alarm;
    let task = null;
    let history = [];
    try {
      [alarm, task] = await Promise.all([get(`/api/alarms/${alarmId}`), get(`/api/alarms/${alarmId}/task`)]);
      history = (await get(`/api/alarms/${alarmId}/history`).catch(() => ({data: []}))).data;
      await ctx.loadNames([alarm.estate]); // another estate's alarm than the loaded site's: its own names
    } catch (err) {
      if (!stopped) mount(main, pageHeader(t('alarmDetail.title', {id: alarmId})), h('p', {class: 'error', role: 'alert'}, errorText(err)));
      return;
    }
    if (stopped) return;
    const info = alarm.sensor ? sensorInfo(ctx, alarm.sensor, alarm.estate) : null;
    const unit = info?.unit || '';
    const digits = digitsFor(info?.kind);
    const started = new Date(alarm.started_at);
    const ended = alarm.ended_at ? new Date(alarm.ended_at) : null;
    const row = (label, value, key) => (value || value === 0 ? [h('dt', {}, label), h('dd', {'data-fact': key}, value)] : []);
    const acks = history.filter((e) => e.action === 'acknowledged');
    const severities = history.filter((e) => e.after && e.after.severity);
    const canAck = ctx.can(...ACK_ROLES);
    const comment = h('textarea', {id: 'ack-comment', rows: 2, maxlength: 2000});
    const error = h('p', {class: 'field-error', role: 'alert'});
    const ackButton = h('button', {type: 'submit', class: 'btn btn-ack', 'data-ack': alarm.id},
      alarm.acknowledged_at ? t('alarmDetail.addComment') : t('alarm.ackButton'));
    const form = canAck ? h('form', {class: 'ack-form', novalidate: true},
      h('div', {class: 'field'}, h('label', {for: 'ack-comment'}, t('alarmDetail.comment')), comment),
      error, h('div', {class: 'actions'}, ackButton)) : null;
    form?.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.textContent = '';
      if (alarm.acknowledged_at && !comment.value.trim()) { error.textContent = t('alarmDetail.needComment'); comment.focus(); return; }
      ackButton.disabled = true;
      try {
        await post(`/api/alarms/${alarm.id}/ack`, comment.value.trim() ? {comment: comment.value.trim()} : undefined);
        announce(t('alarm.ackDone'));
        toast(t('alarm.ackDone'));
        await render();
      } catch (err) {
        ackButton.disabled = false;
        error.textContent = errorText(err);
      }
    });
    mount(main,
      pageHeader(pick(alarm, 'message'), h('a', {href: ctx.can('operator', 'admin', 'supervisor', 'director') ? '#/board' : '#/alarms', class: 'back'}, t('common.back'))),
      h('section', {class: ['panel', 'alarm-detail', `sev-edge-${alarm.peak_severity}`], 'data-alarm-id': alarm.id,
        'data-state': alarm.state, 'aria-labelledby': 'alarm-facts-h'},
      h('h2', {id: 'alarm-facts-h'}, t('alarmDetail.facts')),
      h('dl', {class: 'facts'},
        row(t('alarm.severity'), h('span', {}, severityChip(alarm.severity),
          alarm.peak_severity !== alarm.severity ? [' ', t('alarmDetail.peakSeverity'), ' ', severityChip(alarm.peak_severity)] : null), 'severity'),
        row(t('alarm.room'), roomName(ctx, alarm.room, alarm.estate)),
        row(t('alarm.asset'), equipmentName(ctx, alarm.asset, alarm.estate)),
        row(t('alarmDetail.type'), alarmTypeText(alarm.alarm_type)),
        row(t('alarmDetail.started'), fmtDateTime(started), 'started'),
        row(t('alarmDetail.peak'), alarm.peak_value != null ? `${fmtNum(alarm.peak_value, digits)} ${unit}` : null, 'peak'),
        row(t('alarmDetail.last'), alarm.last_value != null ? `${fmtNum(alarm.last_value, digits)} ${unit}` : null),
        row(t('alarmDetail.state'), alarm.state === 'active' ? t('alarms.active') : t('alarms.cleared'), 'state'),
        row(t('alarmDetail.ended'), ended ? fmtDateTime(ended) : null, 'ended'),
        row(t('alarmDetail.duration'), fmtDuration(((ended || new Date()) - started) / 1000) + (ended ? '' : ` ${t('alarmDetail.sofar')}`), 'duration'),
        row(t('task.repeat'), alarm.repeat_count ? fmtNum(alarm.repeat_count, 0) : null),
        row(t('alarmDetail.silenced'), alarm.silenced_by_exception
          ? t('alarm.silenced', {id: alarm.silenced_by_exception, until: fmtDateTime(alarm.silenced_until, true)}) : null, 'silenced'),
        row(t('alarmDetail.acked'), alarm.acknowledged_at
          ? t('alarm.acked', {who: personName(ctx, alarm.acknowledged_by), at: fmtDateTime(alarm.acknowledged_at, true)})
          : t('alarm.unacked'), 'acked'),
        row(t('alarmDetail.task'), task ? h('a', {href: `#/task/${task.id}`, 'data-task-link': task.id},
          t('task.title', {id: task.id}), ' ', pick(task, 'title'), ' ', taskStateChip(task.state)) : t('alarmDetail.noTask'), 'task')),
      acks.some((e) => e.after && e.after.comment) ? h('div', {class: 'ack-comments'},
        h('h3', {}, t('alarmDetail.comments')),
        h('ul', {}, acks.filter((e) => e.after && e.after.comment).map((e) => h('li', {'data-comment': ''},
          h('q', {}, e.after.comment), ' — ', e.actor_name || personName(ctx, Number(e.actor)), ', ', fmtDateTime(e.ts, true))))) : null,
      form),
      h('section', {class: 'panel', 'aria-labelledby': 'alarm-history-h'},
        h('h2', {id: 'alarm-history-h'}, t('alarmDetail.history'), ' ', h('span', {class: 'count'}, fmtNum(severities.length, 0))),
        history.length ? h('div', {class: 'table-wrap'}, h('table', {class: 'alarm-history'},
          h('thead', {}, h('tr', {}, ['audit.when', 'audit.action', 'alarmDetail.what', 'audit.who'].map((k) => h('th', {scope: 'col'}, t(k))))),
          h('tbody', {}, history.map((e) => historyRow(ctx, e, alarm))))) : h('p', {class: 'muted'}, t('extra.empty'))));
  };
  await render();
  return () => { stopped = true; };
}

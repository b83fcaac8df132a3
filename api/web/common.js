// Pieces several pages share: chips for severity, priority and state; sensor values and their state
// colour; the alarm table with acknowledge in place; names of equipment and people.

import {ApiError, NetworkError, post} from './api.js';
import {announce, h, toast} from './dom.js';
import {fmtDateTime, fmtDuration, fmtNum, fmtRel, has, pick, t} from './i18n.js';

export const ACK_ROLES = ['operator', 'supervisor', 'admin'];
export const MANAGER_ROLES = ['supervisor', 'admin'];
export const STATE_KINDS = new Set(['leak', 'switch_position', 'run_status', 'run_command']);
export const ANALOG_KINDS = ['pressure', 'differential_pressure', 'level', 'flow', 'current', 'temperature', 'voltage',
  'vibration', 'battery'];
const DIGITS = {pressure: 3, differential_pressure: 1, level: 2, flow: 1, current: 1, temperature: 1, voltage: 0,
  vibration: 2, battery: 0, run_hours: 1, duty_select: 0};
export const SEVERITY_RANK = {warning: 1, minor: 2, major: 3, critical: 4};
export const OPEN_STATES = ['raised', 'assigned', 'in_progress', 'sent_back'];

export function digitsFor(kind) { return DIGITS[kind] ?? 2; }

export function chip(kind, value, text, extra = {}) {
  return h('span', {class: ['chip', `${kind}-${value}`], ...extra}, text);
}
export const severityChip = (sev) => chip('sev', sev, t(`sev.${sev}`));
export const priorityChip = (p) => chip('prio', p, t(`prio.${p}`));
export const taskStateChip = (st) => chip('task', st, t(`task.${st}`), {'data-task-state': st});
export const stateChip = (st) => chip('st', st, t(`sensor.${st}`));

/** Words from the API (alarm types, task kinds) in the current language when known. */
export function word(prefix, value) { return has(`${prefix}.${value}`) ? t(`${prefix}.${value}`) : String(value); }

/** The value of a reading as text: state name for state sensors, number with unit otherwise. */
export function valueText(info, reading) {
  if (!reading) return {num: '—', unit: ''};
  if (reading.state && (STATE_KINDS.has(info?.kind) || Object.keys(info?.states || {}).length)) {
    return {num: word('state', reading.state), unit: ''};
  }
  const kind = info?.kind || reading.kind;
  return {num: fmtNum(reading.value, digitsFor(kind)), unit: info?.unit ?? reading.unit ?? ''};
}

/**
 * ok / warning / alarm / stale for a sensor: stale first (a value that cannot be trusted), then the worst
 * active alarm on the sensor, then what the value says by itself (wet, switch not in AUTO, out of range).
 */
export function sensorState(info, reading, alarmsBySensor, stale) {
  if (!reading || stale) return 'stale';
  const alarm = alarmsBySensor.get(info.id);
  if (alarm) return SEVERITY_RANK[alarm.severity] >= SEVERITY_RANK.major ? 'alarm' : 'warning';
  // Beyond a threshold in force: coloured at once, while the alarm still waits out its delay.
  const crossed = limitCrossed(info, reading);
  if (crossed) return SEVERITY_RANK[crossed.severity] >= SEVERITY_RANK.major ? 'alarm' : 'warning';
  if (info.kind === 'leak' && reading.state === 'WET') return 'alarm';
  if (info.kind === 'switch_position' && reading.state && reading.state !== 'AUTO') return 'warning';
  if (reading.quality === 'out_of_range') return 'warning';
  return 'ok';
}

/**
 * The worst threshold in force (GET /api/sensors `thresholds`) that a reading is beyond, or null. The alarm
 * rules wait `for_seconds` before they raise it; the screen says so at once.
 */
export function limitCrossed(info, reading) {
  if (!info || !reading || !Array.isArray(info.thresholds) || !Number.isFinite(reading.value)) return null;
  let worst = null;
  for (const limit of info.thresholds) {
    const beyond = limit.when === 'above' ? reading.value > limit.value : reading.value < limit.value;
    if (beyond && (!worst || SEVERITY_RANK[limit.severity] > SEVERITY_RANK[worst.severity])) worst = limit;
  }
  return worst;
}

/** Active alarms by sensor, the worst one kept. */
export function worstBySensor(alarms) {
  const map = new Map();
  for (const a of alarms) {
    if (!a.sensor || a.state !== 'active') continue;
    const before = map.get(a.sensor);
    if (!before || SEVERITY_RANK[a.severity] > SEVERITY_RANK[before.severity]) map.set(a.sensor, a);
  }
  return map;
}

/**
 * Where the names of `estate`'s places are: the loaded site's (ctx.rooms, ctx.equipment, ctx.sensors) without
 * an estate or for the loaded site's; else that estate's (ctx.loadNames), never the loaded site's, whose ids
 * another estate may share with other things. Until loaded, its rooms from ctx.estates and nothing more.
 */
function namesIn(ctx, estate) {
  if (!estate || estate === ctx.site.id) return ctx;
  const loaded = ctx.names.get(estate);
  if (loaded) return loaded;
  const rooms = ctx.estates.find((e) => e.id === estate)?.rooms || [];
  return {rooms: new Map(rooms.map((r) => [r.id, r])), equipment: new Map(), sensors: new Map()};
}

/** An equipment's (or room's, or sensor's) name; `estate`: the estate of the row it is shown in. */
export function equipmentName(ctx, id, estate) {
  if (!id) return '';
  const names = namesIn(ctx, estate);
  const item = names.equipment.get(id);
  if (item) return pick(item.name);
  const room = names.rooms.get(id);
  if (room) return pick(room.name);
  const sensor = names.sensors.get(id);
  if (sensor && sensor.name) return pick(sensor.name);
  return id;
}

/** A room's name; `estate`: the estate of the row it is shown in. */
export function roomName(ctx, id, estate) {
  const room = namesIn(ctx, estate).rooms.get(id);
  return room ? pick(room.name) : (id || '');
}

/** A sensor as GET /api/sensors gives it (unit, kind, thresholds), or undefined; `estate` as for its name. */
export function sensorInfo(ctx, id, estate) { return namesIn(ctx, estate).sensors.get(id); }

/** A sensor's name; `estate`: the estate of the row it is shown in. */
export function sensorName(ctx, id, estate) {
  const info = namesIn(ctx, estate).sensors.get(id);
  return info && info.name ? pick(info.name) : id;
}

export function personName(ctx, id) {
  if (id === null || id === undefined) return '';
  if (ctx.me && id === ctx.me.id) return t('people.you');
  const person = ctx.people && ctx.people.get(id);
  return person ? person.display_name : t('people.user', {id});
}

// Problem types of the API (api/problems.py) and what they mean to the person who met one.
const PROBLEM_TEXT = {
  'not-found': 'err.type.not-found', forbidden: 'err.type.forbidden', 'illegal-transition': 'err.type.illegal-transition',
  conflict: 'err.type.conflict', 'invalid-input': 'err.type.invalid-input', validation: 'err.type.validation',
  'sign-in-throttled': 'err.type.sign-in-throttled', 'invalid-credentials': 'err.type.invalid-credentials',
  'bad-request': 'err.type.bad-request', 'http-413': 'err.type.too-large', 'http-401': 'err.type.signed-out',
};

/** What a problem of the API means, in the user's language (null when the type is not known here). */
export function problemMeaning(err) {
  if (!(err instanceof ApiError)) return null;
  const kind = String(err.problem.type || '').split('/').pop();
  if (err.status === 409 && err.problem.current) return t('err.type.task-state', {current: word('task', err.problem.current)});
  return PROBLEM_TEXT[kind] ? t(PROBLEM_TEXT[kind]) : null;
}

/**
 * An error as text: what it means in the user's language first; the server's own detail (in English)
 * on a second line (shown as a line of its own where the element keeps line breaks: `.error`, toasts).
 */
export function errorText(err) {
  if (err instanceof NetworkError) return t('err.network');
  if (err instanceof ApiError) {
    const meaning = problemMeaning(err) || t('err.status', {status: err.status});
    return err.message && err.message !== meaning ? `${meaning}\n${t('err.detail', {detail: err.message})}` : meaning;
  }
  return String(err && err.message || err);
}

/** The alarms as a table; unacknowledged ones get an acknowledge button for those who may. */
export function alarmTable(ctx, alarms, {caption, onChange, showRoom = true} = {}) {
  const canAck = ctx.can(...ACK_ROLES);
  const table = h('table', {class: 'alarms'},
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {},
      h('th', {scope: 'col'}, t('alarm.severity')),
      h('th', {scope: 'col'}, t('alarm.message')),
      showRoom ? h('th', {scope: 'col'}, t('alarm.room')) : null,
      h('th', {scope: 'col'}, t('alarm.asset')),
      h('th', {scope: 'col'}, t('alarm.since')),
      h('th', {scope: 'col'}, t('alarm.ack')))));
  const body = h('tbody');
  if (!alarms.length) {
    body.append(h('tr', {}, h('td', {colspan: showRoom ? 6 : 5, class: 'empty'}, t('alarm.none'))));
  }
  for (const a of alarms) body.append(alarmRow(ctx, a, canAck, showRoom, onChange));
  table.append(body);
  return table;
}

function alarmRow(ctx, a, canAck, showRoom, onChange) {
  const started = new Date(a.started_at);
  const age = h('time', {datetime: a.started_at, title: fmtDateTime(started), class: 'age', 'data-since': a.started_at},
    fmtRel(started));
  const ackCell = h('td', {class: 'ack'});
  const fillAck = (alarm) => {
    if (alarm.acknowledged_at) {
      ackCell.replaceChildren(h('span', {class: 'acked'}, t('alarm.acked', {who: personName(ctx, alarm.acknowledged_by),
        at: fmtDateTime(alarm.acknowledged_at, true)})));
    } else if (canAck) {
      const button = h('button', {type: 'button', class: 'btn btn-ack', 'data-ack': alarm.id,
        'aria-label': t('alarm.ackLabel', {msg: pick(alarm, 'message')})}, t('alarm.ackButton'));
      button.addEventListener('click', async () => {
        button.disabled = true;
        try {
          const updated = await post(`/api/alarms/${alarm.id}/ack`);
          Object.assign(a, updated);
          fillAck(updated);
          announce(t('alarm.ackDone'));
          if (onChange) onChange(updated);
        } catch (err) {
          button.disabled = false;
          toast(errorText(err), 'error');
        }
      });
      ackCell.replaceChildren(button);
    } else {
      ackCell.replaceChildren(h('span', {class: 'unacked'}, t('alarm.unacked')));
    }
  };
  fillAck(a);
  // A cleared alarm is told by its worst moment (peak severity and value), when it cleared and how long it lasted.
  const cleared = a.state !== 'active';
  const state = cleared ? h('span', {class: 'cleared', 'data-ended': a.ended_at || ''}, ` · ${t('alarm.cleared')}`,
    a.ended_at ? ` ${fmtDateTime(a.ended_at, true)} · ${t('alarm.lasted', {d: fmtDuration((new Date(a.ended_at) - started) / 1000)})}` : '') : null;
  const info = a.sensor ? sensorInfo(ctx, a.sensor, a.estate) : undefined;
  const kind = info?.kind;
  const shown = cleared && a.peak_value != null ? a.peak_value : a.last_value;
  const value = shown !== null && shown !== undefined && kind && !STATE_KINDS.has(kind)
    ? h('span', {class: 'muted'}, t('alarm.valueShown', {value: `${cleared ? `${t('alarm.peak')} ` : ''}${fmtNum(shown, digitsFor(kind))} ${info?.unit || ''}`.trim()}))
    : null;
  const severity = cleared && a.peak_severity ? a.peak_severity : a.severity;
  return h('tr', {class: ['alarm', `sev-row-${severity}`, a.acknowledged_at ? 'is-acked' : 'is-unacked'],
    'data-alarm-id': a.id, 'data-alarm-type': a.alarm_type, 'data-asset': a.asset, 'data-severity': severity},
  h('td', {}, severityChip(severity)),
  h('td', {}, h('a', {href: `#/alarm/${a.id}`, class: 'alarm-link'}, pick(a, 'message')), value, state,
    a.repeat_count ? h('span', {class: 'muted'}, ` · ${t('alarm.repeat', {n: a.repeat_count})}`) : null,
    a.silenced_by_exception ? h('span', {class: 'muted', 'data-silenced-by': a.silenced_by_exception},
      ` · ${t('alarm.silenced', {id: a.silenced_by_exception, until: fmtDateTime(a.silenced_until, true)})}`) : null),
  showRoom ? h('td', {}, roomName(ctx, a.room, a.estate)) : null,
  h('td', {}, equipmentName(ctx, a.asset, a.estate)),
  h('td', {}, age),
  ackCell);
}

/** Refresh the "5 minutes ago" texts below `root`. */
export function refreshAges(root) {
  for (const el of root.querySelectorAll('[data-since]')) el.textContent = fmtRel(new Date(el.dataset.since));
}

export function loading() { return h('p', {class: 'loading', role: 'status'}, t('common.loading')); }

export function pageHeader(title, ...extra) {
  return h('div', {class: 'page-head'}, h('h1', {tabindex: '-1', id: 'page-title'}, title), ...extra);
}

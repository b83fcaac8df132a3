// The technician's app (phone first): my tasks today, task detail with checklist, photos, notes and the
// completion report; the fault report opened from an equipment QR label; the sync page. Every write
// goes through the outbox, so it works the same with and without network.

import {NetworkError, getCached, post, remember} from './api.js';
import {alarmTypeText} from './alarmconsole.js';
import {
  MANAGER_ROLES, OPEN_STATES, equipmentName, errorText, loading, pageHeader, personName, priorityChip, roomName,
  sensorInfo, taskStateChip, word,
} from './common.js';
import {announce, h, mount, toast} from './dom.js';
import {dayKey, fmtDate, fmtDateTime, fmtNum, fmtRel, fmtTime, lang, pick, t} from './i18n.js';
import {photoInput, signaturePad} from './media.js';
import {discard, enqueue, onOutboxChange, overlay, retry, summary, sync} from './outbox.js';

const MY_STATES = [...OPEN_STATES, 'done'];

/** Words in brackets: full-width in Chinese, half-width after a space in English. */
function paren(text) { return lang() === 'en' ? ` (${text})` : `（${text}）`; }

function offlineNote(result) {
  return result.offline
    ? h('p', {class: 'offline-note', role: 'status'}, t('offline.saved', {time: fmtDateTime(result.at, true)}))
    : null;
}

function taskCard(ctx, task) {
  const due = task.due_at ? new Date(task.due_at) : null;
  const overdue = due && due < new Date() && OPEN_STATES.includes(task.state);
  return h('li', {class: ['task-card', `prio-edge-${task.priority}`], 'data-task-id': task.id},
    h('a', {href: `#/task/${task.id}`, class: 'task-link'},
      h('span', {class: 'task-title'}, pick(task, 'title')),
      h('span', {class: 'task-meta'},
        priorityChip(task.priority), ' ', taskStateChip(task.state),
        task.pending && task.pending.length ? h('span', {class: 'chip chip-pending', 'data-pending': ''}, t('sync.pendingShort')) : null,
        task.conflicts && task.conflicts.length ? h('span', {class: 'chip chip-conflict'}, t('sync.conflictShort')) : null),
      h('span', {class: 'task-where'}, [equipmentName(ctx, task.asset, task.estate), roomName(ctx, task.room, task.estate)]
        .filter(Boolean).join(' · ')),
      due ? h('span', {class: ['task-due', overdue ? 'is-overdue' : '']},
        t(overdue ? 'task.overdueSince' : 'task.dueAt', {time: fmtTime(due), rel: fmtRel(due)})) : null));
}

export async function tasksPage(main, ctx) {
  mount(main, pageHeader(t('tasks.title')), loading());
  let stopped = false;
  const render = async () => {
    const q = new URLSearchParams({mine: 'true', limit: '200'});
    for (const st of MY_STATES) q.append('state', st);
    let result;
    try {
      result = await getCached(`/api/tasks?${q}`);
    } catch (err) {
      if (!stopped) mount(main, pageHeader(t('tasks.title')), h('p', {class: 'error', role: 'alert'}, errorText(err)));
      return;
    }
    if (stopped) return;
    const {ops} = await summary();
    const tasks = result.data.data.map((task) => overlay(task, ops));
    await ctx.loadNames(tasks.map((task) => task.estate)); // a scope of several estates: each card its own names
    if (stopped) return;
    if (!result.offline) for (const task of result.data.data) remember(`/api/tasks/${task.id}`, task);
    const today = dayKey(new Date());
    const groups = {overdue: [], today: [], later: [], done: []};
    for (const task of tasks) {
      if (task.state === 'done') groups.done.push(task);
      else if (task.due_at && new Date(task.due_at) < new Date()) groups.overdue.push(task);
      else if (!task.due_at || dayKey(task.due_at) <= today) groups.today.push(task);
      else groups.later.push(task);
    }
    const section = (key, list) => (list.length ? h('section', {class: 'task-group', 'data-group': key, 'aria-labelledby': `g-${key}`},
      h('h2', {id: `g-${key}`}, t(`tasks.group.${key}`), ' ', h('span', {class: 'count'}, fmtNum(list.length, 0))),
      h('ul', {class: 'task-list'}, list.map((task) => taskCard(ctx, task)))) : null);
    mount(main,
      pageHeader(t('tasks.title'), h('p', {class: 'muted'}, fmtDate(new Date()))),
      offlineNote(result),
      tasks.filter((x) => x.state !== 'done').length ? null : h('p', {class: 'empty-state'}, t('tasks.none')),
      section('overdue', groups.overdue), section('today', groups.today), section('later', groups.later),
      section('done', groups.done),
      h('p', {}, h('a', {href: '#/report', class: 'btn btn-secondary'}, t('report.title'))));
  };
  await render();
  const off = onOutboxChange((sum) => { if (sum.synced.length) render(); });
  const onOnline = () => render();
  window.addEventListener('online', onOnline);
  const every = setInterval(() => { if (navigator.onLine) render(); }, 60000);
  return () => { stopped = true; off(); window.removeEventListener('online', onOnline); clearInterval(every); };
}

/** Text with [attachment:N] markers as text and links (photos as thumbnails). */
export function richText(taskId, text) {
  const parts = [];
  const re = /\[attachment:(\d+)\]|\{att:[#\d]+\}/g;
  let at = 0;
  let m;
  while ((m = re.exec(text || ''))) {
    if (m.index > at) parts.push(text.slice(at, m.index));
    at = re.lastIndex;
    if (!m[1]) { // a photo still on this device, uploaded with the next sync
      parts.push(h('span', {class: 'chip chip-pending'}, t('photo.pending')));
      continue;
    }
    const url = `/api/tasks/${taskId}/attachments/${m[1]}`;
    const img = h('img', {src: url, alt: t('photo.attachment', {id: m[1]}), class: 'thumb', loading: 'lazy'});
    img.addEventListener('error', () => img.remove());
    parts.push(h('a', {href: url, class: 'attachment', 'data-attachment': m[1]}, img, h('span', {}, t('photo.attachment', {id: m[1]}))));
  }
  if (at < (text || '').length) parts.push(text.slice(at));
  return parts;
}

function itemType(item) { return item.type || item.input || 'pass_fail'; }

function rangeText(item) {
  const unit = item.unit ? ` ${item.unit}` : '';
  if (item.min != null && item.max != null) return t('check.range', {min: fmtNum(item.min, 3), max: fmtNum(item.max, 3), unit});
  if (item.min != null) return t('check.min', {min: fmtNum(item.min, 3), unit});
  if (item.max != null) return t('check.max', {max: fmtNum(item.max, 3), unit});
  return '';
}

function inRange(item, value) {
  return (item.min == null || value >= item.min) && (item.max == null || value <= item.max);
}

const MARK = {ok: '✓', fault: '✗', na: '–'};

/** Whether an item's document (attachment: "required") is there: a file named in its note, or one on its way. */
function hasDocument(item) {
  return /\[attachment:\d+\]|\{att:[#\d]+\}/.test(item.note || '');
}

/** The compare sensors of a gauge item with their newest values, as the technician reads them beside the gauge. */
function sensorBeside(ctx, item, latest, estate) {
  const ids = (item.compare || []).filter((id) => sensorInfo(ctx, id, estate));
  if (!ids.length) return null;
  return h('p', {class: 'check-sensor', 'data-compare': ids.join(' ')}, t('check.sensorNow'), ' ',
    ids.map((id, i) => {
      const info = sensorInfo(ctx, id, estate);
      const r = latest.get(id);
      const value = r ? `${fmtNum(r.value, 3)} ${info.unit || ''}`.trim() : '—';
      return h('span', {class: 'check-sensor-value', 'data-sensor-value': id},
        i ? '；' : '', pick(info.name) || id, ' ', h('strong', {}, value), r ? paren(fmtTime(r.ts * 1000, true)) : '');
    }),
    item.disagrees ? h('span', {class: 'check-disagree', role: 'note'}, ' ', t('check.disagrees')) : null);
}

/**
 * One checklist item. Answered items fold to one line (tap to change); open ones show one-tap buttons
 * that save at once (pass, fail, not applicable), a reading that judges itself against its range, and a
 * note and photo that save themselves when left. A failure keeps the item open for its note.
 */
function checkItem(ctx, task, item, editable, latest) {
  const type = itemType(item);
  const id = `chk-${item.key}`;
  const needsDoc = item.attachment === 'required';
  const docState = needsDoc ? (hasDocument(item) ? 'attached' : 'missing') : null;
  const resultChip = item.result
    ? h('span', {class: ['chip', `check-${item.result}`], 'data-result': item.result}, t(`check.${item.result}`), item.pending ? ` · ${t('sync.pendingShort')}` : '')
    : h('span', {class: 'chip check-open'}, t('check.open'));
  const recorded = item.result ? h('p', {class: 'check-recorded'},
    item.value != null ? h('span', {}, `${t('check.value')}：${fmtNum(item.value, 3)}${item.unit ? ` ${item.unit}` : ''} `) : null,
    item.note ? h('span', {class: 'check-note'}, richText(task.id, item.note)) : null) : null;
  const open = editable && (!item.result || (item.result === 'fault' && !(item.note || '').trim()) || docState === 'missing');
  const wrap = h('details', {class: ['check-item', item.result === 'fault' ? 'is-fault' : '', item.result ? 'is-done' : ''],
    'data-key': item.key, 'data-type': type, 'data-result': item.result || '', open: open || !editable ? true : undefined},
  h('summary', {class: 'check-summary'},
    h('span', {class: ['check-mark', `mark-${item.result || 'open'}`], 'aria-hidden': 'true'}, MARK[item.result] || '○'),
    h('span', {class: 'check-text'}, pick(item) || item.key), ' ', resultChip,
    docState ? h('span', {class: ['chip', docState === 'attached' ? 'check-ok' : 'doc-missing'], 'data-doc': docState},
      t(docState === 'attached' ? 'check.docAttached' : 'check.docRequired')) : null),
  rangeText(item) ? h('p', {class: 'muted check-range'}, rangeText(item)) : null,
  sensorBeside(ctx, item, latest, task.estate),
  recorded);
  if (!editable) return wrap;

  const error = h('p', {class: 'field-error', role: 'alert'});
  const hint = h('p', {class: 'check-hint', 'aria-live': 'polite'});
  let valueInput = null;
  let textInput = null;
  let sig = null;
  const note = h('input', {type: 'text', id: `${id}-note`, class: 'check-note-input', autocomplete: 'off',
    value: type === 'text' ? '' : (item.note || '').replace(/\s*(\[attachment:\d+\]|\{att:[#\d]+\})/g, '')});
  const currentValue = () => {
    if (!valueInput || valueInput.value === '') return null;
    return Number.isFinite(valueInput.valueAsNumber) ? valueInput.valueAsNumber : null;
  };
  const keptMarks = () => ((item.note || '').match(/\[attachment:\d+\]|\{att:[#\d]+\}/g) || []).join(' ');
  /** Queue this item's result (and a file first, if one is given); the outbox sends it when it can. */
  const save = async (result, {blob = null, filename = null, document = false} = {}) => {
    error.textContent = '';
    const value = currentValue();
    if (type === 'number' && result !== 'na' && value === null) { error.textContent = t('check.needValue'); valueInput.focus(); return false; }
    const text = textInput ? textInput.value.trim() : note.value.trim();
    if (type === 'text' && result !== 'na' && !text) { error.textContent = t('check.needText'); textInput.focus(); return false; }
    if (type === 'photo' && result === 'ok' && !blob && !keptMarks()) { error.textContent = t('check.needPhoto'); return false; }
    if (sig && result === 'ok' && !blob) {
      blob = await sig.get();
      filename = `signature-${item.key}-${Date.now()}.png`;
      if (!blob) { error.textContent = t('sig.missing'); return false; }
    }
    const ops = [];
    if (blob) ops.push({kind: 'attach', taskId: task.id, blob, filename: filename || `check-${item.key}-${Date.now()}.jpg`,
      checklistKey: document || needsDoc ? item.key : undefined});
    const marks = [keptMarks(), blob ? '{att:#0}' : ''].filter(Boolean).join(' ');
    const noteText = [text, marks].filter(Boolean).join(' ') || null;
    ops.push({kind: 'check', taskId: task.id, key: item.key, body: {result, value, note: noteText}});
    await enqueue(...ops);
    announce(t('check.saved'));
    return true;
  };
  const controls = [];
  if (type === 'number') {
    valueInput = h('input', {type: 'number', step: 'any', inputmode: 'decimal', id: `${id}-value`, class: 'check-value',
      value: item.value != null ? String(item.value) : ''});
    const judge = () => {
      const v = currentValue();
      if (v === null) { hint.textContent = ''; return null; }
      const ok = inRange(item, v);
      hint.textContent = ok ? t('check.inRange') : t('check.outOfRange');
      hint.className = `check-hint ${ok ? 'hint-ok' : 'hint-fault'}`;
      return ok ? 'ok' : 'fault';
    };
    valueInput.addEventListener('input', judge);
    valueInput.addEventListener('change', () => { const r = judge(); if (r) save(r); });
    controls.push(h('div', {class: 'field'},
      h('label', {for: `${id}-value`}, t('check.value'), item.unit ? `（${item.unit}）` : ''), valueInput, hint));
  }
  if (type === 'text') {
    textInput = h('textarea', {id: `${id}-text`, rows: 2, class: 'check-textarea'}, item.note || '');
    textInput.addEventListener('change', () => { if (textInput.value.trim()) save(item.result === 'fault' ? 'fault' : 'ok'); });
    controls.push(h('div', {class: 'field'}, h('label', {for: `${id}-text`}, t('check.text')), textInput));
  }
  if (type === 'signature') {
    sig = signaturePad(`${id}-sig`, t('check.signHere'));
    controls.push(sig.el);
  }
  const buttons = ['ok', 'fault', 'na'].map((r) => {
    const button = h('button', {type: 'button', class: ['btn', 'check-btn', `check-btn-${r}`], 'data-check': r,
      'aria-pressed': String(item.result === r)}, t(`check.tap.${r}`));
    button.addEventListener('click', async () => {
      button.disabled = true;
      const saved = await save(r);
      button.disabled = false;
      if (saved && r === 'fault') setTimeout(() => document.getElementById(`${id}-note`)?.focus(), 50);
    });
    return button;
  });
  controls.push(h('div', {class: 'check-buttons', role: 'group', 'aria-label': t('check.result')}, buttons));
  // A note and a photo are there for a failure; otherwise one tap away, so an open item stays short.
  const extras = [];
  if (type !== 'text') {
    note.addEventListener('change', () => { if (item.result || note.value.trim()) save(item.result || 'fault'); });
    extras.push(h('div', {class: 'field check-note-field'},
      h('label', {for: `${id}-note`}, t(item.result === 'fault' ? 'check.noteFault' : 'check.note')), note));
  }
  if (type !== 'signature') {
    const photo = photoInput(`${id}-photo`, type === 'photo' ? t('check.photoRequired') : t('check.photoOptional'));
    photo.el.addEventListener('change', () => {
      // The photo saves itself once it is ready (shrunk), with the item's result (a photo item: passed).
      const wait = setInterval(async () => {
        if (!photo.get()) return;
        clearInterval(wait);
        await save(item.result || (type === 'photo' ? 'ok' : 'ok'), {blob: photo.get()});
      }, 100);
      setTimeout(() => clearInterval(wait), 10000);
    });
    if (type === 'photo') controls.push(photo.el);
    else extras.push(photo.el);
  }
  if (extras.length) {
    controls.push(item.result === 'fault' || (item.note || '').trim() ? extras
      : h('details', {class: 'check-more'}, h('summary', {}, t('check.more')), extras));
  }
  if (needsDoc) {
    const file = h('input', {type: 'file', id: `${id}-doc`, accept: 'image/*,application/pdf', class: 'doc-input'});
    file.addEventListener('change', async () => {
      const chosen = file.files && file.files[0];
      if (!chosen) return;
      await save(item.result || 'ok', {blob: chosen, filename: chosen.name || `document-${item.key}`, document: true});
    });
    controls.push(h('div', {class: 'field doc-field'},
      h('label', {for: `${id}-doc`}, t('check.docUpload')), file,
      h('p', {class: 'muted'}, t('check.docExplain'))));
  }
  controls.push(error);
  wrap.append(h('div', {class: 'check-form'}, controls));
  return wrap;
}

/** A progress bar of the checklist: answered items of all. */
function progressBar(task) {
  const total = task.checklist.length;
  const done = task.checklist.filter((i) => i.result).length;
  const bar = h('span', {class: 'progress-bar'});
  bar.style.width = `${Math.round((done / Math.max(1, total)) * 100)}%`; // CSSOM: allowed by the page's CSP
  return h('div', {class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': total, 'aria-valuenow': done,
    'aria-label': t('check.progress', {done, total}), 'data-done': done, 'data-total': total},
  bar, h('span', {class: 'progress-text'}, t('check.progress', {done, total})));
}

function factList(ctx, task) {
  const row = (label, value) => (value || value === 0 ? [h('dt', {}, label), h('dd', {}, value)] : []);
  return h('dl', {class: 'facts'},
    row(t('task.state'), taskStateChip(task.state)),
    row(t('task.priority'), priorityChip(task.priority)),
    row(t('task.kind'), word('kind', task.kind)),
    row(t('task.asset'), equipmentName(ctx, task.asset, task.estate)),
    row(t('task.room'), roomName(ctx, task.room, task.estate)),
    // Two clocks: someone takes the task on (response), then the work is done (resolution, `due_at`).
    row(t('task.respondBy'), !task.responded_at && OPEN_STATES.includes(task.state) && task.response_due_at
      ? `${fmtDateTime(task.response_due_at)}${paren(fmtRel(task.response_due_at))}` : null),
    row(t('task.responded'), task.responded_at ? fmtDateTime(task.responded_at) : null),
    row(t('task.due'), task.due_at ? `${fmtDateTime(task.due_at)}${paren(fmtRel(task.due_at))}` : null),
    row(t('task.cycle'), task.cycle > 1 ? t('cycles.round', {n: fmtNum(task.cycle, 0)}) : null),
    row(t('task.created'), fmtDateTime(task.created_at)),
    row(t('task.assignees'), (task.assignee_ids || []).map((id) => personName(ctx, id)).join(', ') || t('task.unassigned')),
    row(t('task.repeat'), task.repeat_count ? fmtNum(task.repeat_count, 0) : null),
    row(t('task.description'), describe(ctx, task)));
}

/**
 * A task's description in the reader's language. The system writes its own as a Chinese line and an English
 * line (plans, rounds, corrective tasks); an alarm task's `asset/alarm_type` is told in words.
 */
export function describe(ctx, task) {
  const text = task.description || '';
  if (!text) return null;
  const alarm = task.kind === 'alarm' && text.match(/^([\w.-]+)\/([\w.:-]+)$/);
  if (alarm) return t('task.alarmDescription', {asset: equipmentName(ctx, alarm[1], task.estate), type: alarmTypeText(alarm[2])});
  const lines = text.split('\n');
  if (task.created_by == null && lines.length >= 2 && /[\u3400-\u9fff]/.test(lines[0]) && !/[\u3400-\u9fff]/.test(lines[1].split(':')[0])) {
    return [lang() === 'en' ? lines[1] : lines[0], ...lines.slice(2)].join('\n');
  }
  return text;
}

/** The completion report and checklist outcome, for anyone reading a finished task. */
export function reportBlock(ctx, task) {
  if (!task.fault_cause && !task.action_taken) return null;
  const row = (label, value) => (value ? [h('dt', {}, label), h('dd', {}, richText(task.id, value))] : []);
  return h('section', {class: 'panel report', 'aria-labelledby': `rep-${task.id}`},
    h('h2', {id: `rep-${task.id}`}, t('complete.report')),
    h('dl', {class: 'facts'},
      row(t('complete.cause'), task.fault_cause),
      row(t('complete.action'), task.action_taken),
      row(t('complete.parts'), task.parts_replaced),
      row(t('complete.remarks'), task.remarks),
      task.technician_signed_by ? row(t('complete.signedTech'),
        `${personName(ctx, task.technician_signed_by)} · ${fmtDateTime(task.technician_signed_at)}`) : [],
      task.supervisor_signed_by ? row(t('complete.signedSup'),
        `${personName(ctx, task.supervisor_signed_by)} · ${fmtDateTime(task.supervisor_signed_at)}`) : []));
}

const CHECK_MARK = {ok: '✓', fault: '✗', na: '–'};

function cycleOutcome(cycle) {
  if (cycle.supervisor_signed_at) return 'verified';
  if (cycle.sent_back_at) return 'sent_back';
  if (cycle.cancelled_at) return 'cancelled';
  return cycle.technician_signed_at ? 'superseded' : 'ended';
}

/** One earlier cycle of work, read-only and compact: who did what when, and both signatures. */
function cycleRecord(ctx, task, cycle) {
  const who = (id) => (id == null ? t('cycles.system') : personName(ctx, id));
  const when = (id, at) => (at ? `${who(id)} · ${fmtDateTime(at, true)}` : null);
  const row = (label, value) => (value ? [h('dt', {}, label), h('dd', {}, value)] : []);
  const checks = (cycle.checklist || []).filter((item) => item.result);
  const parts = (cycle.parts_used || []).map((p) => `${p.part} × ${fmtNum(p.quantity, 2)} ${p.unit || ''}`.trim());
  const outcome = cycleOutcome(cycle);
  return h('details', {class: 'cycle', 'data-cycle': cycle.number, 'data-outcome': outcome},
    h('summary', {},
      h('strong', {}, t('cycles.round', {n: fmtNum(cycle.number, 0)})), ' · ',
      t(`cycles.reason.${cycle.reason}`), ' · ', fmtDateTime(cycle.opened_at, true), ' · ',
      h('span', {class: `cycle-outcome outcome-${outcome}`}, t(`cycles.outcome.${outcome}`))),
    h('dl', {class: 'facts'},
      row(t('cycles.opened'), when(cycle.opened_by, cycle.opened_at)),
      row(t('cycles.responded'), when(cycle.responded_by, cycle.responded_at)),
      row(t('cycles.started'), when(cycle.started_by, cycle.started_at)),
      row(t('cycles.checklist'), checks.length ? h('ul', {class: 'cycle-checks'}, checks.map((item) => h('li', {},
        `${CHECK_MARK[item.result] || ''} ${pick(item) || item.key}`,
        item.value != null ? ` ${fmtNum(item.value, 3)}${item.unit ? ` ${item.unit}` : ''}` : '',
        item.note ? [' — ', richText(task.id, item.note)] : '',
        item.by != null ? paren(personName(ctx, item.by)) : ''))) : null),
      row(t('cycles.parts'), parts.join(', ')),
      row(t('complete.cause'), cycle.fault_cause),
      row(t('complete.action'), cycle.action_taken),
      row(t('complete.parts'), cycle.parts_replaced),
      row(t('complete.remarks'), cycle.remarks),
      row(t('complete.signedTech'), when(cycle.technician_signed_by, cycle.technician_signed_at)),
      row(t('complete.signedSup'), when(cycle.supervisor_signed_by, cycle.supervisor_signed_at)),
      row(t('cycles.sentBack'), cycle.sent_back_at
        ? `${when(cycle.sent_back_by, cycle.sent_back_at)}: ${cycle.sent_back_reason || ''}` : null),
      row(t('cycles.cancelled'), cycle.cancelled_at
        ? `${when(cycle.cancelled_by, cycle.cancelled_at)}: ${cycle.cancel_reason || ''}` : null)));
}

/** The earlier cycles of a task (a repeat alarm reopened it, or it was sent back), newest first. */
export function cyclesBlock(ctx, task) {
  const earlier = (task.cycles || []).filter((cycle) => !cycle.current).reverse();
  if (!earlier.length) return null;
  return h('section', {class: 'panel cycles', 'aria-labelledby': `cycles-h-${task.id}`},
    h('h2', {id: `cycles-h-${task.id}`}, t('cycles.title'), ' ', h('span', {class: 'count'}, fmtNum(earlier.length, 0))),
    earlier.map((cycle) => cycleRecord(ctx, task, cycle)));
}

/** Verify / send back, for a supervisor looking at a done task. */
export function reviewActions(ctx, task, onDone) {
  if (!ctx.can(...MANAGER_ROLES) || task.state !== 'done') return null;
  const reasonId = `reason-${task.id}`;
  const reason = h('textarea', {id: reasonId, rows: 2, class: 'reason'});
  const error = h('p', {class: 'field-error', role: 'alert'});
  const verify = h('button', {type: 'button', class: 'btn btn-primary', 'data-action': 'verify'}, t('review.verify'));
  const back = h('button', {type: 'button', class: 'btn btn-danger', 'data-action': 'send-back'}, t('review.sendBack'));
  const run = async (button, path, body, done) => {
    error.textContent = '';
    button.disabled = true;
    try {
      const updated = await post(path, body);
      toast(done);
      announce(done);
      onDone(updated);
    } catch (err) {
      button.disabled = false;
      error.textContent = errorText(err);
    }
  };
  verify.addEventListener('click', () => run(verify, `/api/tasks/${task.id}/verify`, undefined, t('review.verified', {id: task.id})));
  back.addEventListener('click', () => {
    if (!reason.value.trim()) { error.textContent = t('review.needReason'); reason.focus(); return; }
    run(back, `/api/tasks/${task.id}/send-back`, {reason: reason.value.trim()}, t('review.sentBack', {id: task.id}));
  });
  return h('div', {class: 'review'},
    h('div', {class: 'field'}, h('label', {for: reasonId}, t('review.reason')), reason),
    error, h('div', {class: 'actions'}, verify, back));
}

const ASSIGNABLE = ['raised', 'assigned', 'in_progress', 'sent_back'];

/** Choose the technicians of a task, for a supervisor (or admin) looking at an open one. */
export function assignPanel(ctx, task, onDone) {
  if (!ctx.can(...MANAGER_ROLES) || !ASSIGNABLE.includes(task.state)) return null;
  const technicians = [...ctx.people.values()].filter((p) => p.roles.includes('technician'));
  if (!technicians.length) return null;
  const chosen = new Set(task.assignee_ids || []);
  const boxes = technicians.map((p) => h('span', {class: 'check'},
    h('input', {type: 'checkbox', id: `assign-${task.id}-${p.id}`, value: String(p.id), checked: chosen.has(p.id)}),
    h('label', {for: `assign-${task.id}-${p.id}`}, p.display_name)));
  const error = h('p', {class: 'field-error', role: 'alert'});
  const save = h('button', {type: 'button', class: 'btn btn-primary', 'data-action': 'assign'}, t('assign.save'));
  const section = h('section', {class: 'panel assign', 'aria-labelledby': `assign-h-${task.id}`},
    h('h2', {id: `assign-h-${task.id}`}, t('assign.title')),
    h('div', {class: 'check-row', role: 'group', 'aria-labelledby': `assign-h-${task.id}`}, boxes),
    error, h('div', {class: 'actions'}, save));
  section.addEventListener('change', () => { error.textContent = ''; });
  save.addEventListener('click', async () => {
    const ids = [...section.querySelectorAll('input[type=checkbox]:checked')].map((box) => Number(box.value));
    if (!ids.length) { error.textContent = t('assign.none'); return; }
    error.textContent = '';
    save.disabled = true;
    try {
      const updated = await post(`/api/tasks/${task.id}/assign`, {assignees: ids});
      toast(t('assign.done', {id: task.id, who: ids.map((id) => personName(ctx, id)).join(', ')}));
      onDone(updated);
    } catch (err) {
      save.disabled = false;
      error.textContent = errorText(err);
    }
  });
  return section;
}

function conflictBox(ctx, task, op, rerender) {
  const action = t(`op.${op.kind}`);
  const text = op.status === 'conflict'
    ? t('sync.conflictTask', {action, current: op.current ? word('task', op.current) : '?', detail: op.current ? '' : op.error || ''})
    : t('sync.failedTask', {action, detail: op.error || ''});
  const again = h('button', {type: 'button', class: 'btn'}, t('sync.retry'));
  const drop = h('button', {type: 'button', class: 'btn btn-danger'}, t('sync.discard'));
  again.addEventListener('click', async () => { await retry(op.id); rerender(); });
  drop.addEventListener('click', async () => { await discard(op.id); rerender(); });
  return h('div', {class: 'conflict', role: 'alert', 'data-conflict': op.kind}, h('p', {}, text), h('div', {class: 'actions'}, again, drop));
}

const ROUTINE_KINDS = ['plan', 'inspection'];

/** A fault cause is asked for where a fault was found: not on a routine round whose items all passed. */
function needsCause(task) {
  if (!ROUTINE_KINDS.includes(task.kind)) return true;
  return (task.checklist || []).some((i) => i.result === 'fault' || (i.value != null && !inRange(i, i.value)));
}

function completeForm(ctx, currentTask, askCause = true) {
  const field = (key, required, rows = 3) => {
    const input = h('textarea', {id: `complete-${key}`, name: key, rows, required, 'aria-required': String(required)});
    return {input, el: h('div', {class: 'field'}, h('label', {for: `complete-${key}`}, t(`complete.${key}`), required ? ' *' : ''), input)};
  };
  const cause = askCause ? field('cause', true) : {input: {value: ''}, el: null};
  const action = field('action', true);
  const parts = field('parts', false, 2);
  const remarks = field('remarks', false, 2);
  const sig = signaturePad('complete-sig', t('complete.sign'));
  const error = h('p', {class: 'field-error', role: 'alert'});
  const submit = h('button', {type: 'submit', class: 'btn btn-primary btn-wide'}, t('complete.submit'));
  const form = h('form', {class: 'panel complete-form', novalidate: true, 'aria-labelledby': 'complete-h'},
    h('h2', {id: 'complete-h'}, t('complete.title')),
    askCause ? null : h('p', {class: 'muted', 'data-no-cause': ''}, t('complete.noCause')),
    cause.el, action.el, parts.el, remarks.el, sig.el, error, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    const task = currentTask();
    const open = (task.checklist || []).filter((i) => !i.result);
    if (open.length) { error.textContent = t('complete.openItems', {n: open.length}); return; }
    if (askCause && !cause.input.value.trim()) { error.textContent = t('complete.needCause'); cause.input.focus(); return; }
    if (!action.input.value.trim()) { error.textContent = t('complete.needAction'); action.input.focus(); return; }
    const signature = await sig.get();
    if (!signature) { error.textContent = t('sig.missing'); return; }
    submit.disabled = true;
    await enqueue(
      {kind: 'attach', taskId: task.id, blob: signature, filename: `signature-task-${task.id}.png`},
      {kind: 'note', taskId: task.id, body: {text: `${t('complete.signatureNote')} {att:#0}`}},
      {kind: 'complete', taskId: task.id, body: {
        fault_cause: cause.input.value.trim() || null, action_taken: action.input.value.trim(),
        parts_replaced: parts.input.value.trim() || null, remarks: remarks.input.value.trim() || null,
      }});
    submit.disabled = false;
    announce(navigator.onLine ? t('complete.sent') : t('complete.queued'));
  });
  return form;
}

function notesList(ctx, task) {
  return h('ol', {class: 'notes'}, (task.notes || []).map((n) => h('li', {class: n.pending ? 'is-pending' : ''},
    h('p', {}, richText(task.id, n.text)),
    h('p', {class: 'muted'}, [n.by != null ? personName(ctx, n.by) : '', n.at ? fmtDateTime(n.at, true) : '',
      n.pending ? t('sync.pendingShort') : ''].filter(Boolean).join(' · ')))));
}

function noteForm(taskId) {
  const text = h('textarea', {id: 'note-text', rows: 2});
  const photo = photoInput('note-photo', t('photo.take'));
  const form = h('form', {class: 'note-form', novalidate: true},
    h('div', {class: 'field'}, h('label', {for: 'note-text'}, t('notes.add')), text), photo.el,
    h('button', {type: 'submit', class: 'btn'}, t('notes.save')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const blob = photo.get();
    const body = text.value.trim();
    if (!body && !blob) { text.focus(); return; }
    const ops = [];
    if (blob) ops.push({kind: 'attach', taskId, blob, filename: `photo-${taskId}-${Date.now()}.jpg`});
    ops.push({kind: 'note', taskId, body: {text: [body || t('photo.photo'), blob ? '{att:#0}' : ''].filter(Boolean).join(' ')}});
    text.value = '';
    photo.clear();
    await enqueue(...ops);
    announce(t('notes.saved'));
  });
  return form;
}

export async function taskPage(main, ctx, id) {
  const taskId = Number(id);
  mount(main, pageHeader(t('task.title', {id: taskId})), loading());
  let stopped = false;
  let server = null;
  let offline = null;
  let current = null;
  // Forms keep what was typed (and drawn) while the page refreshes around them.
  const kept = new Map();
  const keep = (key, signature, build) => {
    const before = kept.get(key);
    if (before && before.signature === signature) return before.el;
    const el = build();
    kept.set(key, {signature, el});
    return el;
  };
  const latest = new Map(); // compare sensors' newest readings, for gauge items
  const loadLatest = async () => {
    const ids = new Set((server?.checklist || []).flatMap((i) => i.compare || []));
    const rooms = new Set([...ids].map((id) => sensorInfo(ctx, id, server?.estate)?.room).filter(Boolean));
    for (const room of rooms) {
      try {
        const place = server?.estate ? `?estate=${encodeURIComponent(server.estate)}` : '';
        const page = await getCached(`/api/rooms/${encodeURIComponent(room)}/latest${place}`);
        for (const r of page.data.data) if (ids.has(r.sensor)) latest.set(r.sensor, r);
      } catch { /* offline with no copy: the gauge item shows no sensor value */ }
    }
  };
  const load = async () => {
    try {
      const result = await getCached(`/api/tasks/${taskId}`);
      server = result.data;
      offline = result.offline ? result : null;
    } catch (err) {
      if (!server) {
        mount(main, pageHeader(t('task.title', {id: taskId})), h('p', {class: 'error', role: 'alert'},
          err instanceof NetworkError ? t('offline.notSaved') : errorText(err)));
        return false;
      }
    }
    return true;
  };
  let shown = null; // what the page last drew from: drawing it again would only replace the same nodes
  const render = async () => {
    if (stopped || !server) return;
    const {ops} = await summary();
    const task = overlay(server, ops);
    current = task;
    // A redraw replaces the page's nodes, and a tap that lands while they are replaced is lost: draw only
    // what changed (the minute keeps relative times such as "in 4 hours" current).
    const drawing = JSON.stringify([task, offline && offline.at, navigator.onLine, [...latest.entries()],
      Math.floor(Date.now() / 60000)]);
    if (drawing === shown && main.querySelector('.task-detail')) return;
    shown = drawing;
    const isAssignee = ctx.me && (task.assignee_ids || []).includes(ctx.me.id);
    const canWork = ctx.can('admin') || (ctx.can('technician') && (isAssignee || task.assignee_ids.length === 0));
    const startable = ['raised', 'assigned', 'sent_back'].includes(task.state) && canWork;
    const working = task.state === 'in_progress' && canWork;
    const start = startable ? h('button', {type: 'button', class: 'btn btn-primary btn-wide', 'data-action': 'start'}, t('task.start')) : null;
    if (start) {
      start.addEventListener('click', async () => {
        start.disabled = true;
        await enqueue({kind: 'start', taskId: task.id});
        announce(t('task.started'));
      });
    }
    const back = ctx.can('technician') ? '#/tasks' : ctx.can(...MANAGER_ROLES) ? '#/verify' : '#/alarms';
    const focused = document.activeElement && document.activeElement.id;
    mount(main,
      pageHeader(pick(task, 'title'), h('a', {href: back, class: 'back'}, t('common.back'))),
      h('div', {class: 'task-detail', 'data-task-id': task.id, 'data-state': task.state},
        offline ? offlineNote(offline) : null,
        task.conflicts.map((op) => conflictBox(ctx, task, op, render)),
        task.pending.length ? h('p', {class: 'pending-note', role: 'status', 'data-pending-count': task.pending.length},
          t(navigator.onLine ? 'sync.sending' : 'sync.waiting', {n: task.pending.length})) : null,
        task.state === 'sent_back' && task.sent_back_reason ? h('p', {class: 'sent-back', role: 'alert'},
          t('task.sentBackReason', {reason: task.sent_back_reason})) : null,
        task.state === 'cancelled' && task.cancel_reason ? h('p', {class: 'sent-back'}, t('task.cancelReason', {reason: task.cancel_reason})) : null,
        factList(ctx, task),
        start,
        task.checklist.length ? h('section', {class: 'panel checklist', 'aria-labelledby': 'check-h'},
          h('h2', {id: 'check-h'}, t('check.title'), ' ',
            h('span', {class: 'count'}, `${task.checklist.filter((i) => i.result).length}/${task.checklist.length}`)),
          progressBar(task),
          task.checklist.map((item) => keep(`check-${item.key}`,
            JSON.stringify([item.result, item.value, item.note, Boolean(item.pending), working, task.conflicts.length,
              item.disagrees, (item.compare || []).map((id) => latest.get(id)?.ts)]),
            () => checkItem(ctx, task, item, working, latest)))) : null,
        reportBlock(ctx, task),
        cyclesBlock(ctx, task),
        reviewActions(ctx, task, (updated) => { server = updated; render(); }),
        assignPanel(ctx, task, (updated) => { server = updated; render(); }),
        working ? keep('complete', `form-${needsCause(task)}`, () => completeForm(ctx, () => current, needsCause(task))) : null,
        h('section', {class: 'panel', 'aria-labelledby': 'notes-h'}, h('h2', {id: 'notes-h'}, t('notes.title')),
          notesList(ctx, task), keep('note', 'form', () => noteForm(task.id)))));
    if (focused) document.getElementById(focused)?.focus();
  };
  if (await load()) {
    await ctx.loadNames([server.estate]); // another estate's task than the loaded site's: its own names
    await loadLatest();
    await render();
  }
  const sensorsEvery = setInterval(() => { if (navigator.onLine && !stopped) loadLatest().then(render); }, 30000);
  const off = onOutboxChange(async (sum) => {
    const newest = [...sum.synced].reverse().find((s) => s.result && s.result.id === taskId && s.result.state);
    if (newest) server = newest.result;
    const refused = sum.ops.some((op) => op.taskId === taskId && op.status !== 'pending');
    if ((newest || refused) && navigator.onLine) await load(); // the server's copy after what was sent (or refused)
    render();
  });
  const onNet = () => { load().then(render); };
  window.addEventListener('online', onNet);
  window.addEventListener('offline', onNet);
  return () => {
    stopped = true; off(); clearInterval(sensorsEvery);
    window.removeEventListener('online', onNet); window.removeEventListener('offline', onNet);
  };
}

export async function reportPage(main, ctx, equipmentId) {
  const chosen = equipmentId ? decodeURIComponent(equipmentId) : '';
  const select = h('select', {id: 'report-asset', required: true},
    h('option', {value: ''}, t('report.pick')),
    ctx.site.rooms.map((room) => h('optgroup', {label: pick(room.name)},
      room.equipment.map((e) => h('option', {value: e.id, selected: e.id === chosen}, pick(e.name))))));
  const priorities = ['low', 'normal', 'high', 'critical'];
  const prio = h('div', {class: 'radio-row', role: 'radiogroup', 'aria-labelledby': 'report-prio-l'},
    priorities.map((p) => h('span', {class: 'radio'},
      h('input', {type: 'radio', name: 'priority', id: `prio-${p}`, value: p, checked: p === 'normal'}),
      h('label', {for: `prio-${p}`}, t(`prio.${p}`)))));
  const description = h('textarea', {id: 'report-desc', rows: 4, required: true, 'aria-required': 'true'});
  const photo = photoInput('report-photo', t('photo.take'));
  const error = h('p', {class: 'field-error', role: 'alert'});
  const outcome = h('div', {class: 'outcome', 'aria-live': 'polite'});
  const submit = h('button', {type: 'submit', class: 'btn btn-primary btn-wide'}, t('report.submit'));
  const scan = 'BarcodeDetector' in window ? scanButton(ctx) : null;
  const known = chosen && ctx.equipment.get(chosen);
  const form = h('form', {class: 'panel report-form', novalidate: true},
    known ? h('p', {class: 'scanned', 'data-scanned': chosen}, t('report.scanned', {name: pick(known.name), room: roomName(ctx, ctx.roomOf(chosen)?.id)})) : null,
    h('div', {class: 'field'}, h('label', {for: 'report-asset'}, t('report.asset'), ' *'), select),
    h('div', {class: 'field'}, h('span', {id: 'report-prio-l', class: 'group-label'}, t('report.priority')), prio),
    h('div', {class: 'field'}, h('label', {for: 'report-desc'}, t('report.description'), ' *'), description),
    photo.el, error, submit);
  let waitingFor = null;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    const asset = select.value;
    if (!asset) { error.textContent = t('report.needAsset'); select.focus(); return; }
    if (!description.value.trim()) { error.textContent = t('report.needDescription'); description.focus(); return; }
    const item = ctx.equipment.get(asset);
    const room = ctx.roomOf(asset);
    const name = item.name || {zh: asset, en: asset};
    const ops = [{kind: 'create', body: {
      title: {zh: `报修：${name.zh}`, en: `Fault report: ${name.en}`}, kind: 'fault',
      priority: form.querySelector('input[name="priority"]:checked').value, asset, room: room ? room.id : null,
      description: description.value.trim(),
    }}];
    const blob = photo.get();
    if (blob) {
      ops.push({kind: 'attach', taskRef: '#0', blob, filename: `fault-${asset}-${Date.now()}.jpg`});
      ops.push({kind: 'note', taskRef: '#0', body: {text: `${t('photo.photo')} {att:#1}`}});
    }
    submit.disabled = true;
    const [createId] = await enqueue(...ops);
    waitingFor = createId;
    outcome.replaceChildren(h('p', {class: 'queued', role: 'status'}, navigator.onLine ? t('report.sending') : t('report.queued')));
  });
  const off = onOutboxChange((sum) => {
    const done = sum.synced.find((s) => s.opId === waitingFor && s.kind === 'create');
    if (done) {
      outcome.replaceChildren(h('p', {class: 'created', role: 'status', 'data-created-task': done.taskId},
        t('report.created', {id: done.taskId}), ' ', h('a', {href: `#/task/${done.taskId}`}, t('report.open'))));
      announce(t('report.created', {id: done.taskId}));
      description.value = ''; // the equipment stays chosen: the next report is often about the same one
      form.querySelector('#prio-normal').checked = true;
      photo.clear();
      submit.disabled = false;
    }
  });
  mount(main, pageHeader(t('report.title'), scan), form, outcome);
  return () => off();
}

/** Scan an equipment label with the camera where the browser can read QR codes (Chrome on Android). */
function scanButton() {
  const input = h('input', {type: 'file', accept: 'image/*', capture: 'environment', id: 'scan-input', class: 'visually-hidden'});
  const label = h('label', {for: 'scan-input', class: 'btn btn-secondary'}, t('report.scan'));
  input.addEventListener('change', async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    try {
      const detector = new window.BarcodeDetector({formats: ['qr_code']});
      const codes = await detector.detect(await createImageBitmap(file));
      const url = codes.length ? new URL(codes[0].rawValue, location.href) : null;
      const found = url && url.origin === location.origin && /^#\/report\/[^/]+$/.test(url.hash);
      if (!found) { toast(t('report.scanNothing'), 'error'); return; }
      location.hash = url.hash;
    } catch (err) {
      toast(String(err.message || err), 'error');
    }
  });
  return h('span', {class: 'scan'}, label, input);
}

export async function syncPage(main) {
  const render = async () => {
    const sum = await summary();
    const rows = sum.ops.map((op) => {
      const again = h('button', {type: 'button', class: 'btn'}, t('sync.retry'));
      const drop = h('button', {type: 'button', class: 'btn btn-danger'}, t('sync.discard'));
      again.addEventListener('click', () => retry(op.id));
      drop.addEventListener('click', () => { if (confirm(t('sync.discardConfirm'))) discard(op.id); });
      return h('tr', {'data-op': op.kind, 'data-status': op.status},
        h('td', {}, t(`op.${op.kind}`)),
        h('td', {}, op.taskId != null ? h('a', {href: `#/task/${op.taskId}`}, t('task.title', {id: op.taskId})) : t('sync.newTask')),
        h('td', {}, fmtDateTime(op.created, true)),
        h('td', {}, t(`sync.status.${op.status}`), op.error ? h('p', {class: 'muted'}, op.current ? t('sync.serverState', {state: word('task', op.current)}) : '', ' ', op.error) : null),
        h('td', {}, op.status !== 'pending' ? again : null, ' ', drop));
    });
    mount(main, pageHeader(t('sync.title')),
      h('p', {role: 'status'}, sum.ops.length ? t('sync.summary', {pending: sum.pending, conflicts: sum.conflicts + sum.failed}) : t('sync.allDone')),
      h('p', {}, h('button', {type: 'button', class: 'btn', onclick: () => sync()}, t('sync.now'))),
      sum.ops.length ? h('table', {class: 'ops'},
        h('thead', {}, h('tr', {}, ['sync.col.change', 'sync.col.task', 'sync.col.when', 'sync.col.status', 'sync.col.actions']
          .map((k) => h('th', {scope: 'col'}, t(k))))),
        h('tbody', {}, rows)) : null);
  };
  await render();
  return onOutboxChange(() => render());
}


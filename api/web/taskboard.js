// The supervisor's task board: every task as a list or as columns by state, filtered by room, kind,
// priority, assignee and due time (the filters live in the address, so the overview's counts link to a
// filtered board); unassigned and late tasks first, both SLA clocks and the escalation on every row;
// several tasks assigned at once; new tasks from a plan's checklist; exceptions in force beside it.

import {get, post} from './api.js';
import {
  OPEN_STATES, equipmentName, loading, pageHeader, personName, priorityChip, roomName, sensorInfo, taskStateChip, word,
} from './common.js';
import {announce, h, mount, toast} from './dom.js';
import {chosenEstate, estateField, estateName, estateRooms, manyEstates, withEstate} from './estatepick.js';
import {aside, errorLine, field, joined, peopleOptions, place, problemText, roomOptions, select, uid} from './forms.js';
import {fmtDateTime, fmtNum, fmtRel, pick, t} from './i18n.js';
import {fromLocalInput, siteDay} from './sitetime.js';

const BOARD_STATES = [...OPEN_STATES, 'done'];
const CLOSED_STATES = ['verified', 'cancelled'];
const ASSIGNABLE = ['raised', 'assigned', 'in_progress', 'sent_back'];
const KANBAN = ['raised', 'assigned', 'in_progress', 'sent_back', 'done'];
const KINDS = ['alarm', 'fault', 'plan', 'inspection', 'corrective', 'change'];
const PRIORITIES = ['critical', 'high', 'normal', 'low'];
const RANK = {critical: 4, high: 3, normal: 2, low: 1};
const CREATABLE = ['inspection', 'corrective', 'change', 'fault'];
const PAGE = 100;

/** Filters from the address: "#/taskboard?room=dom&assignee=none" (`estate`: null when the address has none). */
export function boardQuery(text) {
  const q = new URLSearchParams(text || '');
  return {estate: q.get('estate'), state: q.get('state') || 'open', room: q.get('room') || '', kind: q.get('kind') || '',
    priority: q.get('priority') || '', assignee: q.get('assignee') || '', due: q.get('due') || '',
    view: q.get('view') === 'kanban' ? 'kanban' : 'list'};
}

/** The address of the board with these filters (defaults left out). */
export function boardHref(filters = {}) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(filters)) {
    if (value && !(key === 'state' && value === 'open') && !(key === 'view' && value === 'list')) q.set(key, value);
  }
  const text = q.toString();
  return `#/taskboard${text ? `?${text}` : ''}`;
}

const past = (value, now) => Boolean(value) && new Date(value).getTime() < now;

/** Late on either clock: not taken on in time, or not done in time. */
export function lateness(task, now = Date.now()) {
  const open = OPEN_STATES.includes(task.state);
  return {
    response: open && !task.responded_at && past(task.response_due_at, now),
    resolution: open && past(task.resolution_due_at || task.due_at, now),
  };
}

function unassigned(task) { return ASSIGNABLE.includes(task.state) && !(task.assignee_ids || []).length; }

function needsAttention(task, now) {
  const late = lateness(task, now);
  return unassigned(task) || late.response || late.resolution || task.escalation_level >= 2;
}

function matches(task, f, now) {
  if (f.room && task.room !== f.room) return false;
  if (f.kind && task.kind !== f.kind) return false;
  if (f.priority && task.priority !== f.priority) return false;
  if (f.assignee === 'none' && (task.assignee_ids || []).length) return false;
  if (f.assignee && f.assignee !== 'none' && !(task.assignee_ids || []).includes(Number(f.assignee))) return false;
  if (!['open', 'closed', 'all'].includes(f.state) && task.state !== f.state) return false;
  if (f.due === 'overdue') {
    const late = lateness(task, now);
    if (!late.response && !late.resolution) return false;
  }
  if (f.due === 'today' && (!task.due_at || siteDay(task.due_at) > siteDay(now))) return false;
  if (f.due === 'week' && (!task.due_at || new Date(task.due_at).getTime() > now + 7 * 86400000)) return false;
  if (f.due === 'escalated' && task.escalation_level < 2) return false;
  return true;
}

/** Unassigned and late tasks first, the most urgent first among them; then soonest due. */
function ordered(tasks, now) {
  const due = (task) => Math.min(...[task.response_due_at && !task.responded_at ? task.response_due_at : null,
    task.resolution_due_at || task.due_at].filter(Boolean).map((v) => new Date(v).getTime()), Infinity);
  return tasks.slice().sort((a, b) => Number(needsAttention(b, now)) - Number(needsAttention(a, now))
    || RANK[b.priority] - RANK[a.priority] || due(a) - due(b) || a.id - b.id);
}

/** Where a task is: its place, and its estate when the user's scope holds several. */
function where(ctx, task) {
  const spot = place(ctx, task.asset, task.room, task.estate);
  return manyEstates(ctx) && task.estate ? [estateName(ctx, task.estate), spot].filter(Boolean).join(' · ') : spot;
}

function escalationChip(level, clock) {
  if (!level) return null;
  return h('span', {class: ['chip', `esc-${Math.min(3, level)}`], 'data-escalation': `${clock}-${level}`},
    t(`tb.esc.${clock}`, {level: t(`esc.l${Math.min(3, level)}`)}));
}

/** Both SLA clocks of a task as short lines: respond by / resolve by, late ones marked. */
export function clocks(task, now = Date.now()) {
  const late = lateness(task, now);
  const line = (key, value, isLate, done) => h('span', {class: ['clock', isLate ? 'is-overdue' : '', done ? 'is-met' : ''],
    'data-clock': key},
  h('span', {class: 'clock-label'}, t(`tb.clock.${key}`)), ' ',
  done ? h('span', {}, done) : value ? h('time', {datetime: value, title: fmtDateTime(value)},
    aside(fmtDateTime(value, true), fmtRel(value))) : '—');
  const open = OPEN_STATES.includes(task.state);
  const responded = task.responded_at ? t('tb.clock.respondedAt', {time: fmtDateTime(task.responded_at, true)}) : null;
  return h('span', {class: 'clocks'},
    line('response', task.response_due_at, late.response, responded || (!open ? t('tb.clock.closed') : null)),
    line('resolution', task.resolution_due_at || task.due_at, late.resolution,
      task.technician_signed_at ? t('tb.clock.doneAt', {time: fmtDateTime(task.technician_signed_at, true)})
        : !open && task.state !== 'done' ? t('tb.clock.closed') : null),
    escalationChip(task.response_escalation, 'response'), escalationChip(task.resolution_escalation, 'resolution'));
}

function assigneeText(ctx, task) {
  const ids = task.assignee_ids || [];
  if (!ids.length) return h('span', {class: 'unassigned-flag'}, t('task.unassigned'));
  return joined(ids.map((id) => personName(ctx, id)));
}

function attentionFlags(task, now) {
  const late = lateness(task, now);
  return [
    late.response ? h('span', {class: 'chip flag-late'}, t('tb.flag.responseLate')) : null,
    late.resolution ? h('span', {class: 'chip flag-late'}, t('tb.flag.resolutionLate')) : null,
    task.late ? h('span', {class: 'chip flag-created-late'}, t('tb.flag.createdLate')) : null,
  ];
}

function selectBox(task, selected, onToggle) {
  const id = `sel-${task.id}`;
  const box = h('input', {type: 'checkbox', id, class: 'select-task', value: String(task.id), checked: selected.has(task.id),
    'aria-label': t('tb.select', {title: pick(task, 'title')})});
  box.addEventListener('change', () => onToggle(task.id, box.checked));
  return box;
}

function listView(ctx, tasks, selected, onToggle, now) {
  const allBox = h('input', {type: 'checkbox', id: 'sel-all', 'aria-label': t('tb.selectAll')});
  allBox.checked = tasks.length > 0 && tasks.every((task) => selected.has(task.id));
  allBox.addEventListener('change', () => tasks.forEach((task) => onToggle(task.id, allBox.checked, true)));
  return h('div', {class: 'table-wrap', tabindex: '0'}, h('table', {class: 'taskboard'},
    h('thead', {}, h('tr', {},
      h('th', {scope: 'col', class: 'col-select'}, allBox),
      ['task.priority', 'esc.task', 'task.kind', 'task.state', 'task.assignees', 'tb.clocks']
        .map((key) => h('th', {scope: 'col'}, t(key))))),
    h('tbody', {}, tasks.length ? tasks.map((task) => h('tr', {'data-task-id': task.id, 'data-state': task.state,
      class: needsAttention(task, now) ? 'needs-attention' : ''},
    h('td', {class: 'col-select'}, selectBox(task, selected, onToggle)),
    h('td', {}, priorityChip(task.priority)),
    h('td', {class: 'col-title'}, h('a', {href: `#/task/${task.id}`}, pick(task, 'title')),
      h('span', {class: 'muted where'}, where(ctx, task)), h('span', {class: 'flags'}, attentionFlags(task, now))),
    h('td', {}, word('kind', task.kind)),
    h('td', {}, taskStateChip(task.state)),
    h('td', {}, assigneeText(ctx, task)),
    h('td', {}, clocks(task, now))))
      : h('tr', {}, h('td', {colspan: 7, class: 'empty'}, t('tb.none'))))));
}

function kanbanView(ctx, tasks, selected, onToggle, now) {
  return h('div', {class: 'kanban'}, KANBAN.map((state) => {
    const column = tasks.filter((task) => task.state === state);
    return h('section', {class: 'kanban-col', 'data-column': state, 'aria-labelledby': `kb-${state}`},
      h('h2', {id: `kb-${state}`}, taskStateChip(state), ' ', h('span', {class: 'count'}, fmtNum(column.length, 0))),
      h('ul', {class: 'kanban-cards'}, column.map((task) => h('li', {class: ['kanban-card', `prio-edge-${task.priority}`,
        needsAttention(task, now) ? 'needs-attention' : ''], 'data-task-id': task.id},
      h('div', {class: 'kanban-card-head'}, selectBox(task, selected, onToggle), priorityChip(task.priority),
        h('span', {class: 'muted'}, word('kind', task.kind))),
      h('a', {href: `#/task/${task.id}`, class: 'kanban-title'}, pick(task, 'title')),
      h('span', {class: 'muted where'}, where(ctx, task)),
      h('span', {class: 'kanban-who'}, assigneeText(ctx, task)),
      h('span', {class: 'flags'}, attentionFlags(task, now)),
      clocks(task, now)))),
      column.length ? null : h('p', {class: 'empty'}, t('tb.columnEmpty')));
  }));
}

/** Choose technicians and assign every selected task that can still be assigned. */
function bulkBar(ctx, selectedTasks, onDone) {
  if (!selectedTasks.length) return null;
  const technicians = [...ctx.people.values()].filter((p) => p.roles.includes('technician'));
  const boxes = technicians.map((p) => {
    const id = uid('bulk-tech');
    return h('span', {class: 'check'}, h('input', {type: 'checkbox', id, value: String(p.id)}), h('label', {for: id}, p.display_name));
  });
  const error = errorLine();
  const assignable = selectedTasks.filter((task) => ASSIGNABLE.includes(task.state));
  const go = h('button', {type: 'button', class: 'btn btn-primary', 'data-action': 'bulk-assign'},
    t('tb.bulk.assign', {n: fmtNum(assignable.length, 0)}));
  const bar = h('section', {class: 'panel bulk-bar', 'aria-labelledby': 'bulk-h'},
    h('h2', {id: 'bulk-h'}, t('tb.bulk.title', {n: fmtNum(selectedTasks.length, 0)})),
    assignable.length < selectedTasks.length
      ? h('p', {class: 'muted'}, t('tb.bulk.skipped', {n: fmtNum(selectedTasks.length - assignable.length, 0)})) : null,
    h('div', {class: 'check-row', role: 'group', 'aria-labelledby': 'bulk-h'}, boxes),
    error.el, h('div', {class: 'actions'}, go));
  go.addEventListener('click', async () => {
    const ids = [...bar.querySelectorAll('input[type=checkbox]:checked')].map((box) => Number(box.value));
    if (!ids.length) { error.show(t('assign.none')); return; }
    if (!assignable.length) { error.show(t('tb.bulk.nothing')); return; }
    error.clear();
    go.disabled = true;
    const failed = [];
    for (const task of assignable) {
      try {
        await post(`/api/tasks/${task.id}/assign`, {assignees: ids});
      } catch (err) {
        failed.push(`#${task.id}: ${problemText(err)}`);
      }
    }
    go.disabled = false;
    const done = assignable.length - failed.length;
    const who = joined(ids.map((id) => personName(ctx, id)));
    const text = t('tb.bulk.done', {n: fmtNum(done, 0), who});
    toast(text);
    announce(text);
    if (failed.length) error.show(failed.join('；'));
    onDone(failed.length === 0);
  });
  return bar;
}

/**
 * Where a new task may be put: `load(estate)` answers the estate's rooms (with their equipment) and plans.
 * With one estate in scope the site and plans the page has; with several, asked for once per estate.
 */
export function estateParts(ctx, plans) {
  const known = new Map();
  return (estate) => {
    if (!manyEstates(ctx)) return Promise.resolve({rooms: ctx.site.rooms, plans});
    if (!known.has(estate)) {
      const q = `estate=${encodeURIComponent(estate)}`;
      const loading = Promise.all([estate === ctx.siteEstate ? ctx.site : get(`/api/site?${q}`), get(`/api/plans?${q}`)])
        .then(([site, page]) => ({rooms: site.rooms || [], plans: page.data || []}));
      loading.catch(() => known.delete(estate)); // asked again on the next choice
      known.set(estate, loading);
    }
    return known.get(estate);
  };
}

/**
 * A new task, optionally with a plan's checklist (a round, a cleaning, a test run done by hand). With several
 * estates in scope the task is the board's estate when one is chosen, else the one chosen in the form; the
 * rooms, equipment and checklists offered are that estate's.
 */
function createPanel(ctx, parts, boardEstate, onCreated) {
  const many = manyEstates(ctx);
  let estate = many ? boardEstate || '' : '';
  let rooms = [];
  let templates = [];
  const estateSelect = many && !boardEstate ? select('new-estate', [['', t('tb.new.chooseEstate')],
    ...ctx.estates.map((e) => [e.id, pick(e.name) || e.id])], '', {'data-estate-select': ''}) : null;
  const estateShown = many && boardEstate
    ? h('p', {class: 'new-estate', 'data-new-estate': boardEstate}, t('tb.new.inEstate', {name: estateName(ctx, boardEstate)})) : null;
  const template = select('new-template', [['', t('tb.new.noTemplate')]]);
  const kind = select('new-kind', CREATABLE.map((k) => [k, word('kind', k)]), 'corrective');
  const room = select('new-room', [['', t('tb.new.anyRoom')]]);
  const asset = select('new-asset', [['', t('tb.new.noAsset')]]);
  const options = (el, pairs, chosen) => el.replaceChildren(...pairs
    .map(([v, text]) => h('option', {value: v, selected: v === chosen}, text)));
  const fillAssets = () => {
    options(asset, [['', t('tb.new.noAsset')], ...rooms.filter((r) => !room.value || r.id === room.value)
      .flatMap((r) => r.equipment.map((e) => [e.id, room.value ? pick(e.name) : aside(pick(e.name), pick(r.name))]))], asset.value);
  };
  const fillPlaces = () => {
    options(template, [['', t('tb.new.noTemplate')],
      ...templates.map((p) => [p.id, t('tb.new.templateOption', {name: pick(p.name), n: fmtNum(p.checklist.length, 0)})])],
    template.value);
    options(room, [['', t('tb.new.anyRoom')], ...rooms.map((r) => [r.id, pick(r.name)])], room.value);
    fillAssets();
  };
  const roomOf = (id) => rooms.find((r) => r.id === id || r.equipment.some((e) => e.id === id));
  const equipmentOf = (id) => rooms.flatMap((r) => r.equipment).find((e) => e.id === id);
  // The places and checklists follow the estate; until one is chosen there are none to offer.
  const useEstate = async (id) => {
    estate = id;
    const found = many && !id ? {rooms: [], plans: []} : await parts(id);
    if (estate !== id) return; // chosen again meanwhile
    rooms = found.rooms;
    templates = found.plans.filter((p) => (p.checklist || []).length);
    fillPlaces();
  };
  const error = errorLine();
  // A failed fetch leaves the form without places; it says why, and choosing an estate asks again.
  const ready = useEstate(estate).catch((err) => error.show(err));
  const titleZh = h('input', {id: 'new-title-zh', maxlength: 200, lang: 'zh-CN'});
  const titleEn = h('input', {id: 'new-title-en', maxlength: 200, lang: 'en'});
  const prio = select('new-priority', PRIORITIES.map((p) => [p, t(`prio.${p}`)]), 'normal');
  const due = h('input', {id: 'new-due', type: 'datetime-local'});
  const description = h('textarea', {id: 'new-desc', rows: 3, maxlength: 4000});
  const technicians = [...ctx.people.values()].filter((p) => p.roles.includes('technician'));
  const techBoxes = technicians.map((p) => {
    const id = uid('new-tech');
    return h('span', {class: 'check'}, h('input', {type: 'checkbox', id, value: String(p.id)}), h('label', {for: id}, p.display_name));
  });
  const submit = h('button', {type: 'submit', class: 'btn btn-primary'}, t('tb.new.submit'));
  // The title follows the template and the room until someone types one of their own.
  let typed = false;
  const suggest = () => {
    if (typed) return;
    const plan = templates.find((p) => p.id === template.value);
    const where = asset.value ? equipmentOf(asset.value)?.name : rooms.find((r) => r.id === room.value)?.name;
    if (!plan) return;
    titleZh.value = `${plan.name.zh}${where ? `：${where.zh}` : ''}`;
    titleEn.value = `${plan.name.en}${where ? `: ${where.en}` : ''}`;
  };
  template.addEventListener('change', () => {
    if (template.value) kind.value = templates.find((p) => p.id === template.value)?.task_kind === 'inspection' ? 'inspection' : 'corrective';
    suggest();
  });
  room.addEventListener('change', () => { fillAssets(); suggest(); });
  asset.addEventListener('change', suggest);
  titleZh.addEventListener('input', () => { typed = true; });
  titleEn.addEventListener('input', () => { typed = true; });
  estateSelect?.addEventListener('change', () => {
    error.clear();
    useEstate(estateSelect.value).catch((err) => error.show(err));
  });
  const form = h('form', {class: 'create-task', novalidate: true},
    estateShown,
    h('div', {class: 'form-grid'},
      estateSelect ? field(t('estate.label'), estateSelect, {required: true}) : null,
      field(t('tb.new.template'), template, {hint: t('tb.new.templateHint')}),
      field(t('task.kind'), kind, {required: true}),
      field(t('task.room'), room),
      field(t('task.asset'), asset),
      field(t('tb.new.titleZh'), titleZh, {required: true}),
      field(t('tb.new.titleEn'), titleEn, {required: true}),
      field(t('task.priority'), prio),
      field(t('tb.new.due'), due, {hint: t('tb.new.dueHint')}),
      field(t('task.description'), description, {wide: true})),
    h('fieldset', {class: 'plain'}, h('legend', {}, t('tb.new.assign')), h('div', {class: 'check-row'}, techBoxes)),
    error.el, h('div', {class: 'actions'}, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    if (many && !estate) { error.show(t('tb.new.needEstate')); estateSelect?.focus(); return; }
    if (!titleZh.value.trim() && !titleEn.value.trim()) { error.show(t('tb.new.needTitle')); titleZh.focus(); return; }
    const dueAt = fromLocalInput(due.value);
    const body = {
      title: {zh: titleZh.value.trim() || titleEn.value.trim(), en: titleEn.value.trim() || titleZh.value.trim()},
      kind: kind.value, priority: prio.value, room: room.value || (asset.value ? roomOf(asset.value)?.id : null) || null,
      asset: asset.value || null, description: description.value.trim() || null,
      due_at: dueAt ? dueAt.toISOString() : null, template: template.value || null,
    };
    submit.disabled = true;
    try {
      const task = await post(`/api/tasks${estate ? `?estate=${encodeURIComponent(estate)}` : ''}`, body);
      const ids = [...form.querySelectorAll('.check input:checked')].map((box) => Number(box.value));
      if (ids.length) await post(`/api/tasks/${task.id}/assign`, {assignees: ids});
      toast(t('tb.new.created', {id: task.id}));
      announce(t('tb.new.created', {id: task.id}));
      onCreated(task);
    } catch (err) {
      error.show(err);
    } finally {
      submit.disabled = false;
    }
  });
  return {form, ready};
}

/** Approved exceptions in force now: the switches allowed out of AUTO, until when and why. */
export function exceptionsInForce(ctx, rows, now = Date.now()) {
  const active = rows.filter((x) => x.state === 'approved' && new Date(x.starts_at).getTime() <= now
    && new Date(x.ends_at).getTime() > now);
  if (!active.length) return null;
  return h('section', {class: 'panel exceptions-in-force', 'aria-labelledby': 'xf-h'},
    h('h2', {id: 'xf-h'}, t('exc.inForce'), ' ', h('span', {class: 'count'}, fmtNum(active.length, 0))),
    h('ul', {class: 'plain-list'}, active.map((x) => h('li', {'data-exception-id': x.id},
      h('a', {href: `#/exceptions?id=${x.id}`}, x.sensor ? pick(sensorInfo(ctx, x.sensor, x.estate)?.name)
        || equipmentName(ctx, x.asset, x.estate) : equipmentName(ctx, x.asset, x.estate)),
      ` · ${roomName(ctx, x.room, x.estate)} · `, t('exc.until', {time: fmtDateTime(x.ends_at, true)}), ' · ',
      h('span', {class: 'muted'}, x.reason)))));
}

async function loadTasks(filters, offset) {
  if (filters.state === 'closed' || CLOSED_STATES.includes(filters.state)) {
    const q = withEstate(new URLSearchParams({limit: String(PAGE), offset: String(offset)}), filters.estate);
    for (const st of filters.state === 'closed' ? CLOSED_STATES : [filters.state]) q.append('state', st);
    for (const key of ['room', 'kind', 'priority']) if (filters[key]) q.set(key, filters[key]);
    if (filters.assignee && filters.assignee !== 'none') q.set('assignee', filters.assignee);
    const page = await get(`/api/tasks?${q}`);
    return {tasks: page.data, count: page.count, paged: true};
  }
  const q = withEstate(new URLSearchParams({limit: '500'}), filters.estate);
  for (const st of filters.state === 'all' ? [...BOARD_STATES, ...CLOSED_STATES] : BOARD_STATES) q.append('state', st);
  const page = await get(`/api/tasks?${q}`);
  return {tasks: page.data, count: page.count, paged: false};
}

export async function taskBoardPage(main, ctx, queryText) {
  const filters = boardQuery(queryText);
  filters.estate = chosenEstate(ctx, filters.estate); // several estates in scope: from the address or this device
  const selected = new Set();
  let offset = 0;
  let data = {tasks: [], count: 0, paged: false};
  let plans = [];
  let exceptions = [];
  let stopped = false;
  const title = t('tb.tasks.title');
  mount(main, pageHeader(title), loading());

  const summary = h('div', {class: 'attention-strip'});
  const bulkSlot = h('div', {class: 'bulk-slot'});
  const listSlot = h('div', {class: 'board-slot', 'aria-live': 'polite'});
  const pager = h('div', {class: 'pager'});
  const exceptionsSlot = h('div', {class: 'exceptions-slot'});
  const createSlot = h('div', {class: 'create-slot'});
  const canManage = ctx.can('supervisor', 'admin');

  const remember = () => history.replaceState(null, '', `${location.pathname}${location.search}${boardHref(filters)}`);
  const selectedTasks = () => data.tasks.filter((task) => selected.has(task.id));
  const toggle = (id, on, many) => {
    if (on) selected.add(id); else selected.delete(id);
    if (many) draw(); else drawBulk();
  };
  const drawBulk = () => bulkSlot.replaceChildren(canManage ? bulkBar(ctx, selectedTasks(), (ok) => {
    if (ok) selected.clear();
    reload();
  }) || '' : '');
  const draw = () => {
    const now = Date.now();
    const shown = ordered(data.tasks.filter((task) => matches(task, filters, now)), now);
    const open = data.tasks.filter((task) => OPEN_STATES.includes(task.state));
    const counts = {
      unassigned: open.filter(unassigned).length,
      responseLate: open.filter((task) => lateness(task, now).response).length,
      resolutionLate: open.filter((task) => lateness(task, now).resolution).length,
      escalated: open.filter((task) => task.escalation_level >= 2).length,
    };
    const link = (key, to) => h('a', {class: ['attention', counts[key] ? 'has-some' : ''], href: boardHref({...to, view: filters.view}),
      'data-attention': key}, h('span', {class: 'attention-value'}, fmtNum(counts[key], 0)), ' ', t(`tb.attention.${key}`));
    summary.replaceChildren(data.paged ? '' : h('nav', {class: 'attention-links', 'aria-label': t('tb.attention.label')},
      link('unassigned', {assignee: 'none'}), link('responseLate', {due: 'overdue'}),
      link('resolutionLate', {due: 'overdue'}), link('escalated', {due: 'escalated'})));
    listSlot.dataset.count = String(shown.length);
    listSlot.replaceChildren(
      h('p', {class: 'muted', role: 'status'}, data.paged
        ? t('tb.shownPaged', {from: fmtNum(data.count ? offset + 1 : 0, 0), to: fmtNum(offset + data.tasks.length, 0), total: fmtNum(data.count, 0)})
        : t('tb.shown', {n: fmtNum(shown.length, 0), total: fmtNum(data.tasks.length, 0)})),
      filters.view === 'kanban' ? kanbanView(ctx, shown, selected, toggle, now) : listView(ctx, shown, selected, toggle, now));
    pager.replaceChildren();
    if (data.paged) {
      const prev = h('button', {type: 'button', class: 'btn', disabled: offset === 0}, t('common.prev'));
      const next = h('button', {type: 'button', class: 'btn', disabled: offset + PAGE >= data.count}, t('common.next'));
      prev.addEventListener('click', () => { offset = Math.max(0, offset - PAGE); reload(); });
      next.addEventListener('click', () => { offset += PAGE; reload(); });
      pager.append(prev, next);
    }
    drawBulk();
    exceptionsSlot.replaceChildren(exceptionsInForce(ctx, exceptions, now) || '');
  };
  const reload = async () => {
    try {
      data = await loadTasks(filters, offset);
      await ctx.loadNames(data.tasks.map((task) => task.estate)); // every estate's board: each row its own names
      for (const id of [...selected]) if (!data.tasks.some((task) => task.id === id)) selected.delete(id);
    } catch (err) {
      listSlot.replaceChildren(h('p', {class: 'error', role: 'alert'}, problemText(err)));
      return;
    }
    if (!stopped) draw();
  };

  const control = (key, label, options) => {
    const el = select(`tb-${key}`, options, filters[key]);
    el.addEventListener('change', () => {
      const wasPaged = filters.state === 'closed' || CLOSED_STATES.includes(filters.state);
      filters[key] = el.value;
      offset = 0;
      remember();
      const paged = filters.state === 'closed' || CLOSED_STATES.includes(filters.state);
      if (key === 'state' || paged || wasPaged) reload(); else draw();
    });
    return h('div', {class: 'field field-inline'}, h('label', {for: el.id}, label), el);
  };
  const technicians = peopleOptions(ctx, ['technician']);
  const filterForm = h('form', {class: 'filters tb-filters', 'aria-label': t('tb.filters')},
    control('state', t('task.state'), [['open', t('tb.state.open')], ...BOARD_STATES.map((st) => [st, t(`task.${st}`)]),
      ['closed', t('tb.state.closed')], ...CLOSED_STATES.map((st) => [st, t(`task.${st}`)]), ['all', t('alarms.all')]]),
    estateField(ctx, filters.estate, (estate) => {
      filters.estate = estate;
      filters.room = '';
      offset = 0;
      filterForm.querySelector('#tb-room').replaceChildren(...[['', t('alarms.all')], ...estateRooms(ctx, estate).map((r) => [r.id, pick(r.name)])]
        .map(([value, text]) => h('option', {value}, text)));
      remember();
      reload();
    }, {id: 'tb-estate'}),
    control('room', t('task.room'), [['', t('alarms.all')], ...(ctx.estates.length > 1 ? estateRooms(ctx, filters.estate).map((r) => [r.id, pick(r.name)]) : roomOptions(ctx))]),
    control('kind', t('task.kind'), [['', t('alarms.all')], ...KINDS.map((k) => [k, word('kind', k)])]),
    control('priority', t('task.priority'), [['', t('alarms.all')], ...PRIORITIES.map((p) => [p, t(`prio.${p}`)])]),
    control('assignee', t('task.assignees'), [['', t('alarms.all')], ['none', t('task.unassigned')], ...technicians]),
    control('due', t('tb.due'), [['', t('alarms.all')], ['overdue', t('tb.due.overdue')], ['today', t('tb.due.today')],
      ['week', t('tb.due.week')], ['escalated', t('tb.due.escalated')]]));
  filterForm.addEventListener('submit', (event) => event.preventDefault());
  const viewButtons = h('div', {class: 'segmented', role: 'group', 'aria-label': t('tb.view')},
    ['list', 'kanban'].map((v) => h('button', {type: 'button', class: 'btn', 'data-view': v, 'aria-pressed': String(filters.view === v)},
      t(`tb.view.${v}`))));
  viewButtons.addEventListener('click', (event) => {
    const button = event.target.closest('[data-view]');
    if (!button) return;
    filters.view = button.dataset.view;
    for (const b of viewButtons.querySelectorAll('[data-view]')) b.setAttribute('aria-pressed', String(b === button));
    remember();
    draw();
  });
  const newButton = canManage ? h('button', {type: 'button', class: 'btn btn-primary', id: 'new-task', 'aria-expanded': 'false',
    'aria-controls': 'create-panel'}, t('tb.new.open')) : null;
  // The plans' checklists are the templates of a new task: asked for at once, waited for on "new task". With
  // several estates each estate's plans are asked for when the form shows that estate.
  const plansReady = manyEstates(ctx) ? Promise.resolve()
    : get('/api/plans').then((page) => { plans = page.data || []; }).catch(() => {});
  if (newButton) {
    newButton.addEventListener('click', async () => {
      const open = newButton.getAttribute('aria-expanded') === 'true';
      if (!open) await plansReady;
      newButton.setAttribute('aria-expanded', String(!open));
      if (open) { createSlot.replaceChildren(''); return; }
      const panel = createPanel(ctx, estateParts(ctx, plans), filters.estate, (task) => {
        newButton.setAttribute('aria-expanded', 'false');
        createSlot.replaceChildren(h('p', {class: 'created', role: 'status', 'data-created-task': task.id},
          t('tb.new.created', {id: task.id}), ' ', h('a', {href: `#/task/${task.id}`}, t('report.open'))));
        reload();
      });
      await panel.ready;
      createSlot.replaceChildren(h('section', {class: 'panel', id: 'create-panel', 'aria-labelledby': 'create-h'},
        h('h2', {id: 'create-h'}, t('tb.new.title')), panel.form));
      createSlot.querySelector('select, input')?.focus();
    });
  }

  mount(main, pageHeader(title, h('div', {class: 'head-tools'}, viewButtons, newButton)),
    createSlot, summary, filterForm, exceptionsSlot, bulkSlot, listSlot, pager);
  const [, exceptionsResult] = await Promise.allSettled([reload(), get('/api/exceptions?state=approved&limit=100'),
    plansReady]);
  if (exceptionsResult.status === 'fulfilled') exceptions = exceptionsResult.value.data || [];
  await ctx.loadNames(exceptions.map((x) => x.estate));
  if (!stopped) draw();
  const every = setInterval(() => { if (!selected.size && !createSlot.childNodes.length) reload(); }, 30000);
  return () => { stopped = true; clearInterval(every); };
}

// Supervisor and director pages: task verification, escalations (overdue tasks), the alarms overview,
// the overview of both; QR labels; and pages for API routes that exist only on some servers.

import {get} from './api.js';
import {
  OPEN_STATES, SEVERITY_RANK, alarmTable, chip, equipmentName, errorText, loading, pageHeader, personName,
  priorityChip, refreshAges, roomName, taskStateChip,
} from './common.js';
import {h, mount} from './dom.js';
import {fmtDateTime, fmtDuration, fmtNum, fmtRel, pick, t} from './i18n.js';
import {reportBlock, reviewActions, richText} from './tasks.js';

function errorBox(err) { return h('p', {class: 'error', role: 'alert'}, errorText(err)); }

function checklistSummary(task) {
  if (!task.checklist || !task.checklist.length) return null;
  return h('table', {class: 'checklist-table'},
    h('caption', {}, t('check.title')),
    h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, t('check.item')), h('th', {scope: 'col'}, t('check.result')),
      h('th', {scope: 'col'}, t('check.value')), h('th', {scope: 'col'}, t('check.noteCol')))),
    h('tbody', {}, task.checklist.map((item) => h('tr', {class: item.result === 'fault' ? 'is-fault' : '', 'data-key': item.key},
      h('td', {}, pick(item) || item.key),
      h('td', {}, item.result ? h('span', {class: ['chip', `check-${item.result}`]}, t(`check.${item.result}`)) : '—'),
      h('td', {}, item.value != null ? `${fmtNum(item.value, 3)}${item.unit ? ` ${item.unit}` : ''}` : ''),
      h('td', {}, richText(task.id, item.note || ''))))));
}

function notesSummary(ctx, task) {
  if (!task.notes || !task.notes.length) return null;
  return h('details', {class: 'notes-summary'}, h('summary', {}, t('notes.count', {n: task.notes.length})),
    h('ol', {class: 'notes'}, task.notes.map((n) => h('li', {}, h('p', {}, richText(task.id, n.text)),
      h('p', {class: 'muted'}, `${personName(ctx, n.by)} · ${fmtDateTime(n.at, true)}`)))));
}

export async function verifyPage(main, ctx) {
  mount(main, pageHeader(t('verify.title')), loading());
  const render = async () => {
    let page;
    try {
      page = await get('/api/tasks?state=done&limit=100');
    } catch (err) {
      mount(main, pageHeader(t('verify.title')), errorBox(err));
      return;
    }
    const list = h('div', {class: 'verify-list'});
    for (const task of page.data) {
      const card = h('article', {class: ['panel', 'verify-card', `prio-edge-${task.priority}`], 'data-task-id': task.id,
        'aria-labelledby': `vt-${task.id}`},
      h('header', {class: 'card-head'},
        h('h2', {id: `vt-${task.id}`}, h('a', {href: `#/task/${task.id}`}, pick(task, 'title'))),
        h('span', {}, priorityChip(task.priority), ' ', taskStateChip(task.state))),
      h('p', {class: 'muted'}, [equipmentName(ctx, task.asset), roomName(ctx, task.room),
        t('verify.doneBy', {who: personName(ctx, task.technician_signed_by), at: fmtDateTime(task.technician_signed_at, true)})]
        .filter(Boolean).join(' · ')),
      checklistSummary(task),
      reportBlock(ctx, task),
      notesSummary(ctx, task),
      reviewActions(ctx, task, () => {
        card.dataset.reviewed = 'true';
        setTimeout(render, 600);
      }));
      list.append(card);
    }
    mount(main, pageHeader(t('verify.title'), h('p', {class: 'muted'}, t('verify.count', {n: page.count}))),
      page.data.length ? list : h('p', {class: 'empty-state'}, t('verify.none')));
  };
  await render();
  return () => {};
}

async function openTasks() {
  const q = new URLSearchParams({limit: '500'});
  for (const st of OPEN_STATES) q.append('state', st);
  return (await get(`/api/tasks?${q}`)).data;
}

function escalationTable(ctx, tasks) {
  const now = Date.now();
  return h('table', {class: 'escalations'},
    h('thead', {}, h('tr', {}, ['esc.level', 'task.priority', 'esc.task', 'task.asset', 'task.state', 'esc.late', 'task.assignees']
      .map((k) => h('th', {scope: 'col'}, t(k))))),
    h('tbody', {}, tasks.length ? tasks.map((task) => h('tr', {'data-task-id': task.id, 'data-level': task.escalation_level},
      h('td', {}, chip('esc', task.escalation_level, t(`esc.l${Math.min(3, task.escalation_level)}`))),
      h('td', {}, priorityChip(task.priority)),
      h('td', {}, h('a', {href: `#/task/${task.id}`}, pick(task, 'title'))),
      h('td', {}, equipmentName(ctx, task.asset)),
      h('td', {}, taskStateChip(task.state)),
      h('td', {}, task.due_at && new Date(task.due_at) < now
        ? h('span', {class: 'is-overdue'}, t('esc.overdueBy', {d: fmtDuration((now - new Date(task.due_at)) / 1000)}))
        : t('esc.dueIn', {rel: fmtRel(task.due_at)})),
      h('td', {}, (task.assignee_ids || []).map((id) => personName(ctx, id)).join(', ') || t('task.unassigned'))))
      : h('tr', {}, h('td', {colspan: 7, class: 'empty'}, t('esc.none')))));
}

function lateTasks(tasks) {
  const now = Date.now();
  return tasks.filter((task) => task.escalation_level > 0 || (task.due_at && new Date(task.due_at) < now))
    .sort((a, b) => b.escalation_level - a.escalation_level || new Date(a.due_at) - new Date(b.due_at));
}

export async function escalationsPage(main, ctx) {
  mount(main, pageHeader(t('esc.title')), loading());
  try {
    const late = lateTasks(await openTasks());
    mount(main, pageHeader(t('esc.title'), h('p', {class: 'muted'}, t('esc.explain'))), escalationTable(ctx, late));
  } catch (err) {
    mount(main, pageHeader(t('esc.title')), errorBox(err));
  }
  return () => {};
}

export async function overviewPage(main, ctx) {
  mount(main, pageHeader(t('overview.title')), loading());
  const render = async () => {
    try {
      const [active, unacked, tasks, done] = await Promise.all([
        get('/api/alarms?state=active&limit=200'), get('/api/alarms?state=active&acknowledged=false&limit=1'),
        openTasks(), get('/api/tasks?state=done&limit=1')]);
      const late = lateTasks(tasks);
      const worst = active.data.reduce((w, a) => (SEVERITY_RANK[a.severity] > SEVERITY_RANK[w] ? a.severity : w), 'warning');
      const tile = (key, value, tone, href) => h(href ? 'a' : 'div', {class: ['kpi', `kpi-${tone}`], href, 'data-kpi': key},
        h('span', {class: 'kpi-value'}, fmtNum(value, 0)), h('span', {class: 'kpi-label'}, t(`overview.${key}`)));
      mount(main, pageHeader(t('overview.title')),
        h('div', {class: 'kpis'},
          tile('activeAlarms', active.count, active.count ? (SEVERITY_RANK[worst] >= 3 ? 'bad' : 'warn') : 'good', '#/alarms'),
          tile('unacked', unacked.count, unacked.count ? 'bad' : 'good'),
          tile('openTasks', tasks.length, 'neutral'),
          tile('late', late.length, late.length ? 'bad' : 'good', '#/escalations'),
          tile('awaiting', done.count, done.count ? 'warn' : 'good', ctx.can('supervisor', 'admin') ? '#/verify' : undefined)),
        h('section', {class: 'panel', 'aria-labelledby': 'ov-esc'}, h('h2', {id: 'ov-esc'}, t('esc.title')),
          escalationTable(ctx, late.slice(0, 10))),
        h('section', {class: 'panel', 'aria-labelledby': 'ov-alarms'}, h('h2', {id: 'ov-alarms'}, t('board.activeAlarms')),
          alarmTable(ctx, active.data, {onChange: render})));
    } catch (err) {
      mount(main, pageHeader(t('overview.title')), errorBox(err));
    }
  };
  await render();
  const every = setInterval(render, 30000);
  return () => clearInterval(every);
}

const PAGE = 50;

export async function alarmsPage(main, ctx) {
  const filters = {state: 'active', severity: '', room: ''};
  let offset = 0;
  const select = (id, label, options, key) => {
    const el = h('select', {id}, options.map(([value, text]) => h('option', {value, selected: filters[key] === value}, text)));
    el.addEventListener('change', () => { filters[key] = el.value; offset = 0; render(); });
    return h('div', {class: 'field field-inline'}, h('label', {for: id}, label), el);
  };
  const form = h('form', {class: 'filters', 'aria-label': t('alarms.filters')},
    select('f-state', t('alarms.state'), [['active', t('alarms.active')], ['cleared', t('alarms.cleared')], ['', t('alarms.all')]], 'state'),
    select('f-sev', t('alarm.severity'), [['', t('alarms.all')], ...['critical', 'major', 'minor', 'warning'].map((v) => [v, t(`sev.${v}`)])], 'severity'),
    select('f-room', t('alarm.room'), [['', t('alarms.all')], ...ctx.site.rooms.map((r) => [r.id, pick(r.name)])], 'room'));
  form.addEventListener('submit', (e) => e.preventDefault());
  const slot = h('div', {class: 'alarm-slot'});
  const pager = h('div', {class: 'pager'});
  const render = async () => {
    const q = new URLSearchParams({limit: String(PAGE), offset: String(offset)});
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    try {
      const page = await get(`/api/alarms?${q}`);
      slot.replaceChildren(alarmTable(ctx, page.data, {caption: t('alarms.shown', {from: page.count ? offset + 1 : 0,
        to: offset + page.data.length, total: page.count})}));
      const prev = h('button', {type: 'button', class: 'btn', disabled: offset === 0}, t('common.prev'));
      const next = h('button', {type: 'button', class: 'btn', disabled: offset + PAGE >= page.count}, t('common.next'));
      prev.addEventListener('click', () => { offset = Math.max(0, offset - PAGE); render(); });
      next.addEventListener('click', () => { offset += PAGE; render(); });
      pager.replaceChildren(prev, next);
    } catch (err) {
      slot.replaceChildren(errorBox(err));
    }
  };
  mount(main, pageHeader(t('alarms.title')), form, slot, pager);
  await render();
  const every = setInterval(render, 20000);
  const ages = setInterval(() => refreshAges(slot), 15000);
  return () => { clearInterval(every); clearInterval(ages); };
}

export async function labelsPage(main, ctx) {
  mount(main, pageHeader(t('labels.title'), h('p', {class: 'muted'}, t('labels.explain'))),
    ...ctx.site.rooms.map((room) => h('section', {class: 'panel', 'aria-labelledby': `lab-${room.id}`},
      h('div', {class: 'section-head'}, h('h2', {id: `lab-${room.id}`}, pick(room.name)),
        h('a', {class: 'btn', href: `/labels?room=${encodeURIComponent(room.id)}`}, t('labels.printRoom'))),
      h('ul', {class: 'label-links'}, room.equipment.map((e) => h('li', {},
        h('a', {href: `/label/${encodeURIComponent(e.id)}`, 'data-label': e.id}, pick(e.name)), ' ',
        h('span', {class: 'muted'}, e.id), ' ',
        h('a', {href: `#/report/${encodeURIComponent(e.id)}`, class: 'muted'}, t('labels.report'))))))));
  return () => {};
}

/** A page for an API route this server may or may not have (plans, calendar, reports, approvals). */
export async function extraPage(main, ctx, key) {
  const extra = ctx.extras[key];
  if (!extra) {
    mount(main, pageHeader(t('extra.missing')));
    return () => {};
  }
  const title = t(`nav.${key}`);
  mount(main, pageHeader(title), loading());
  if (key === 'reports') return monthlyReport(main, ctx, extra, title);
  try {
    mount(main, pageHeader(title), genericData(await get(extra.path)));
  } catch (err) {
    mount(main, pageHeader(title), errorBox(err));
  }
  return () => {};
}

function thisMonth() {
  const now = new Date();
  return `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}`;
}

async function monthlyReport(main, ctx, extra, title) {
  const input = h('input', {type: 'month', id: 'report-month', value: thisMonth()});
  const links = h('p', {class: 'actions'});
  const body = h('div', {class: 'report-data'});
  const load = async () => {
    const month = input.value || thisMonth();
    const base = extra.monthly ? `/api/reports/monthly/${month}` : extra.path;
    links.replaceChildren(
      extra.monthly ? h('a', {class: 'btn', href: `${base}?format=html`, target: '_blank', rel: 'noopener'}, t('report.printable')) : '',
      ' ',
      extra.monthly ? h('a', {class: 'btn', href: `${base}?format=csv`}, t('report.csv')) : '');
    body.replaceChildren(loading());
    try {
      body.replaceChildren(genericData(await get(base)));
    } catch (err) {
      body.replaceChildren(errorBox(err));
    }
  };
  input.addEventListener('change', load);
  mount(main, pageHeader(title), extra.monthly ? h('div', {class: 'field field-inline'},
    h('label', {for: 'report-month'}, t('report.month')), input) : null, links, body);
  await load();
  return () => {};
}

function cell(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object' && !Array.isArray(value) && ('zh' in value || 'en' in value)) return pick(value);
  if (typeof value === 'number') return fmtNum(value, 2);
  if (typeof value === 'boolean') return value ? '✓' : '✗';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** Any JSON the API returns, readable: lists of records as tables, objects as definition lists. */
export function genericData(data, depth = 0) {
  if (Array.isArray(data)) {
    if (!data.length) return h('p', {class: 'empty-state'}, t('extra.empty'));
    if (data.every((row) => row && typeof row === 'object' && !Array.isArray(row))) {
      const columns = [...new Set(data.flatMap((row) => Object.keys(row)))].slice(0, 10);
      return h('div', {class: 'table-wrap'}, h('table', {class: 'generic'},
        h('thead', {}, h('tr', {}, columns.map((c) => h('th', {scope: 'col'}, c)))),
        h('tbody', {}, data.slice(0, 500).map((row) => h('tr', {}, columns.map((c) => h('td', {}, cell(row[c]))))))));
    }
    return h('ul', {}, data.map((v) => h('li', {}, cell(v))));
  }
  if (data && typeof data === 'object') {
    if (Array.isArray(data.data) && depth === 0) return genericData(data.data, depth + 1);
    const dl = h('dl', {class: 'facts generic'});
    for (const [key, value] of Object.entries(data)) {
      dl.append(h('dt', {}, key), h('dd', {}, value && typeof value === 'object' && depth < 2 && !('zh' in value)
        ? genericData(value, depth + 1) : cell(value)));
    }
    return dl;
  }
  return h('p', {}, cell(data));
}


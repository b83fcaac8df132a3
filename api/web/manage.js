// Supervisor and director pages: task verification, escalations (overdue tasks), the alarms overview,
// the overview of both (counts that lead into the task board, KPIs as charts); QR labels.

import {withEstateColumn} from './alarmconsole.js';
import {get} from './api.js';
import {waitingForMe} from './approvals.js';
import {
  OPEN_STATES, SEVERITY_RANK, alarmTable, chip, equipmentName, errorText, loading, pageHeader, personName,
  priorityChip, refreshAges, roomName, taskStateChip,
} from './common.js';
import {h, mount} from './dom.js';
import {chosenEstate, estateField, estateRooms} from './estatepick.js';
import {fmtDateTime, fmtDuration, fmtNum, fmtRel, pick, t} from './i18n.js';
import {barChart, ring} from './kpi.js';
import {monthBounds, siteMonth} from './sitetime.js';
import {boardHref, lateness} from './taskboard.js';
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
      await ctx.loadNames(page.data.map((task) => task.estate)); // the tasks of every estate in scope
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
      h('p', {class: 'muted'}, [equipmentName(ctx, task.asset, task.estate), roomName(ctx, task.room, task.estate),
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

async function openTasks(states = OPEN_STATES) {
  const q = new URLSearchParams({limit: '500'});
  for (const st of states) q.append('state', st);
  return (await get(`/api/tasks?${q}`)).data;
}

function escalationTable(ctx, tasks) {
  const now = Date.now();
  return h('div', {class: 'table-wrap', tabindex: '0'}, h('table', {class: 'escalations'},
    h('thead', {}, h('tr', {}, ['esc.level', 'task.priority', 'esc.task', 'task.asset', 'task.state', 'esc.late', 'task.assignees']
      .map((k) => h('th', {scope: 'col'}, t(k))))),
    h('tbody', {}, tasks.length ? tasks.map((task) => h('tr', {'data-task-id': task.id, 'data-level': task.escalation_level},
      h('td', {}, chip('esc', task.escalation_level, t(`esc.l${Math.min(3, task.escalation_level)}`))),
      h('td', {}, priorityChip(task.priority)),
      h('td', {}, h('a', {href: `#/task/${task.id}`}, pick(task, 'title'))),
      h('td', {}, equipmentName(ctx, task.asset, task.estate)),
      h('td', {}, taskStateChip(task.state)),
      h('td', {}, task.due_at && new Date(task.due_at) < now
        ? h('span', {class: 'is-overdue'}, t('esc.overdueBy', {d: fmtDuration((now - new Date(task.due_at)) / 1000)}))
        : t('esc.dueIn', {rel: fmtRel(task.due_at)})),
      h('td', {}, (task.assignee_ids || []).map((id) => personName(ctx, id)).join(', ') || t('task.unassigned'))))
      : h('tr', {}, h('td', {colspan: 7, class: 'empty'}, t('esc.none'))))));
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
    await ctx.loadNames(late.map((task) => task.estate));
    mount(main, pageHeader(t('esc.title'), h('p', {class: 'muted'}, t('esc.explain'))), escalationTable(ctx, late));
  } catch (err) {
    mount(main, pageHeader(t('esc.title')), errorBox(err));
  }
  return () => {};
}

const OPEN_COLUMNS = [['raised', 'info'], ['assigned', 'info'], ['in_progress', 'warn'], ['sent_back', 'bad'], ['done', 'warn']];

/** This month's inspection rounds due so far, and how many were done (technician signed) by their deadline. */
async function inspectionCompliance(now) {
  const {start} = monthBounds(siteMonth(new Date(now)));
  const q = new URLSearchParams({kind: 'inspection', due_after: start.toISOString(), due_before: new Date(now).toISOString(),
    limit: '500'});
  const page = await get(`/api/tasks?${q}`);
  const due = page.data.filter((task) => task.state !== 'cancelled');
  const onTime = due.filter((task) => task.technician_signed_at && new Date(task.technician_signed_at) <= new Date(task.due_at));
  return {due: due.length, onTime: onTime.length, share: due.length ? onTime.length / due.length : null};
}

export async function overviewPage(main, ctx) {
  mount(main, pageHeader(t('overview.title')), loading());
  const render = async () => {
    const now = Date.now();
    try {
      const [active, unacked, tasks, report, inspection, approvals] = await Promise.all([
        get('/api/alarms?state=active&limit=200'), get('/api/alarms?state=active&acknowledged=false&limit=1'),
        openTasks([...OPEN_STATES, 'done']), get(`/api/reports/monthly/${siteMonth()}`).catch(() => null),
        inspectionCompliance(now).catch(() => null), waitingForMe(ctx).catch(() => null)]);
      await ctx.loadNames([...active.data, ...tasks].map((row) => row.estate)); // rows of every estate in scope
      const open = tasks.filter((task) => OPEN_STATES.includes(task.state));
      const late = lateTasks(open);
      const unassigned = open.filter((task) => !(task.assignee_ids || []).length && task.state !== 'in_progress');
      const overdue = open.filter((task) => { const l = lateness(task, now); return l.response || l.resolution; });
      const done = tasks.filter((task) => task.state === 'done');
      const worst = active.data.reduce((w, a) => (SEVERITY_RANK[a.severity] > SEVERITY_RANK[w] ? a.severity : w), 'warning');
      const tile = (key, value, tone, href) => h(href ? 'a' : 'div', {class: ['kpi', `kpi-${tone}`], href, 'data-kpi': key},
        h('span', {class: 'kpi-value'}, fmtNum(value, 0)), h('span', {class: 'kpi-label'}, t(`overview.${key}`)),
        href ? h('span', {class: 'kpi-go', 'aria-hidden': 'true'}, '→') : null);
      const board = ctx.can('supervisor', 'director', 'admin');
      const sla = report?.sla || {};
      const byState = barChart({title: t('overview.byState'), id: 'ov-states',
        bars: OPEN_COLUMNS.map(([state, tone]) => ({key: state, label: t(`task.${state}`), tone,
          value: tasks.filter((task) => task.state === state).length, href: boardHref({state})}))});
      const byRoom = barChart({title: t('overview.byRoom'), id: 'ov-rooms',
        bars: ctx.site.rooms.map((room) => ({key: room.id, label: pick(room.name), tone: 'info',
          value: open.filter((task) => task.room === room.id).length, href: boardHref({room: room.id})}))});
      const rings = h('div', {class: 'rings'},
        ring({key: 'response', label: t('rep.sla.response'), share: sla.response?.attainment,
          detail: t('rep.slaDetail', {met: fmtNum(sla.response?.met ?? 0, 0), missed: fmtNum(sla.response?.missed ?? 0, 0)})}),
        ring({key: 'resolution', label: t('rep.sla.resolution'), share: sla.resolution?.attainment,
          detail: t('rep.slaDetail', {met: fmtNum(sla.resolution?.met ?? 0, 0), missed: fmtNum(sla.resolution?.missed ?? 0, 0)})}),
        ring({key: 'rotation', label: t('rep.rotation'), share: report?.rotation?.compliance,
          detail: t('rep.rotationDetail', {on: fmtNum(report?.rotation?.on_time ?? 0, 0), planned: fmtNum(report?.rotation?.planned ?? 0, 0)})}),
        ring({key: 'inspection', label: t('overview.inspection'), share: inspection?.share,
          detail: t('overview.inspectionDetail', {on: fmtNum(inspection?.onTime ?? 0, 0), due: fmtNum(inspection?.due ?? 0, 0)})}));
      const repeats = (report?.repeat_faults || []).slice().sort((a, b) => b.faults - a.faults).slice(0, 8);
      const repeatChart = barChart({title: t('rep.repeatChart'), id: 'ov-repeat', empty: t('rep.noRepeat'),
        bars: repeats.map((row) => ({key: row.asset, label: equipmentName(ctx, row.asset), value: row.faults,
          text: t('rep.repeatBar', {faults: fmtNum(row.faults, 0), repeats: fmtNum(row.repeats, 0)}), tone: row.repeats ? 'bad' : 'warn',
          href: boardHref({state: 'all'})}))});
      mount(main, pageHeader(t('overview.title'), h('p', {class: 'muted'}, t('overview.asOf', {time: fmtDateTime(now, true)}))),
        h('div', {class: 'kpis'},
          tile('activeAlarms', active.count, active.count ? (SEVERITY_RANK[worst] >= 3 ? 'bad' : 'warn') : 'good', '#/alarms'),
          tile('unacked', unacked.count, unacked.count ? 'bad' : 'good', '#/alarms'),
          tile('openTasks', open.length, 'neutral', board ? boardHref() : undefined),
          tile('unassigned', unassigned.length, unassigned.length ? 'warn' : 'good', board ? boardHref({assignee: 'none'}) : undefined),
          tile('late', overdue.length, overdue.length ? 'bad' : 'good', board ? boardHref({due: 'overdue'}) : '#/escalations'),
          tile('awaiting', done.length, done.length ? 'warn' : 'good', ctx.can('supervisor', 'admin') ? '#/verify' : boardHref({state: 'done'})),
          approvals === null ? null : tile('approvals', approvals, approvals ? 'warn' : 'good', '#/approvals')),
        h('div', {class: 'overview-grid'},
          h('section', {class: 'panel', 'aria-labelledby': 'ov-tasks-h'}, h('h2', {id: 'ov-tasks-h'}, t('overview.tasksTitle')), byState, byRoom),
          h('section', {class: 'panel', 'aria-labelledby': 'ov-sla-h'}, h('h2', {id: 'ov-sla-h'}, t('overview.slaTitle', {month: siteMonth()})),
            rings, report ? h('p', {}, h('a', {href: `#/monthly/${siteMonth()}`}, t('overview.toReport'))) : null),
          h('section', {class: 'panel', 'aria-labelledby': 'ov-rep-h'}, h('h2', {id: 'ov-rep-h'}, t('rep.repeat')), repeatChart)),
        h('section', {class: 'panel', 'aria-labelledby': 'ov-esc'}, h('h2', {id: 'ov-esc'}, t('esc.title'),
          ' ', h('a', {href: '#/escalations', class: 'muted small'}, t('overview.all'))), escalationTable(ctx, late.slice(0, 10))),
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

export async function alarmsPage(main, ctx, queryText) {
  // `estate` (only with several estates in scope): from the address, else the one kept on this device.
  const filters = {state: 'active', severity: '', room: '',
    estate: chosenEstate(ctx, new URLSearchParams(queryText || '').get('estate'))};
  let offset = 0;
  const select = (id, label, options, key) => {
    const el = h('select', {id}, options.map(([value, text]) => h('option', {value, selected: filters[key] === value}, text)));
    el.addEventListener('change', () => { filters[key] = el.value; offset = 0; render(); });
    return h('div', {class: 'field field-inline'}, h('label', {for: id}, label), el);
  };
  const form = h('form', {class: 'filters', 'aria-label': t('alarms.filters')},
    select('f-state', t('alarms.state'), [['active', t('alarms.active')], ['cleared', t('alarms.cleared')], ['', t('alarms.all')]], 'state'),
    select('f-sev', t('alarm.severity'), [['', t('alarms.all')], ...['critical', 'major', 'minor', 'warning'].map((v) => [v, t(`sev.${v}`)])], 'severity'),
    select('f-room', t('alarm.room'), [['', t('alarms.all')], ...estateRooms(ctx, filters.estate).map((r) => [r.id, pick(r.name)])], 'room'));
  const estatePicker = estateField(ctx, filters.estate, (estate) => {
    filters.estate = estate;
    filters.room = '';
    offset = 0;
    form.querySelector('#f-room').replaceChildren(...[['', t('alarms.all')], ...estateRooms(ctx, estate).map((r) => [r.id, pick(r.name)])]
      .map(([value, text]) => h('option', {value}, text)));
    history.replaceState(null, '', `${location.pathname}${location.search}#/alarms${estate ? `?estate=${encodeURIComponent(estate)}` : ''}`);
    render();
  });
  if (estatePicker) form.prepend(estatePicker);
  form.addEventListener('submit', (e) => e.preventDefault());
  const slot = h('div', {class: 'alarm-slot'});
  const pager = h('div', {class: 'pager'});
  const render = async () => {
    const q = new URLSearchParams({limit: String(PAGE), offset: String(offset)});
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    try {
      const page = await get(`/api/alarms?${q}`);
      await ctx.loadNames(page.data.map((a) => a.estate)); // over every estate: each row named from its own
      slot.replaceChildren(withEstateColumn(ctx, alarmTable(ctx, page.data, {caption: t('alarms.shown', {from: page.count ? offset + 1 : 0,
        to: offset + page.data.length, total: page.count})}), page.data, filters.estate));
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

/** The old addresses of the plans, calendar, reports and approvals pages (`#/more/<key>`): their pages now. */
export async function extraPage(main, ctx, key) {
  const target = {approvals: '#/approvals', plans: '#/plans', calendar: '#/calendar', reports: '#/monthly'}[key];
  if (target) {
    location.replace(target);
    return () => {};
  }
  mount(main, pageHeader(t('extra.missing')));
  return () => {};
}

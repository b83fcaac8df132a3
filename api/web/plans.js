// The maintenance plans in words (每 2 天 08:00、每周一 17:00、每年 12月1日–1月31日) and the plan calendar:
// a month grid on a desktop, an agenda list on a phone, each entry showing what became of it (the task's
// real state: verified, cancelled, overdue, created late) and linking to its task.

import {get} from './api.js';
import {equipmentName, loading, pageHeader, roomName, word} from './common.js';
import {h, mount} from './dom.js';
import {chosenEstate, estateField, estateRooms, estateZone, withEstate} from './estatepick.js';
import {aside, joined, problemText, select} from './forms.js';
import {fmtNum, has, lang, pick, setTimeZone, t} from './i18n.js';
import {daysIn, monthBounds, shiftMonth, siteDay, siteMonth, siteParts} from './sitetime.js';

const WEEKDAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];
const OPEN = ['raised', 'assigned', 'in_progress', 'sent_back'];

function hhmm(at) { return typeof at === 'string' ? at.slice(0, 5) : '17:00'; }

function monthDay(text) {
  const [m, d] = String(text).split('-').map(Number);
  return t('plans.monthDay', {m, d});
}

function ordinalDay(day) {
  if (lang() !== 'en') return String(day);
  const tens = day % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : ({1: 'st', 2: 'nd', 3: 'rd'}[day % 10] || 'th');
  return `${day}${suffix}`;
}

/** A plan's schedule as a sentence: 每 2 天 08:00, every Monday at 17:00, every year 1 Dec – 31 Jan. */
export function scheduleText(schedule) {
  if (!schedule || !schedule.type) return '—';
  const at = hhmm(schedule.at);
  switch (schedule.type) {
    case 'every_days':
      return schedule.days === 1 ? t('plans.daily', {at}) : t('plans.everyDays', {n: fmtNum(schedule.days, 0), at});
    case 'weekly':
      return t('plans.weekly', {day: t(`plans.weekday.${schedule.weekday || 'monday'}`), at});
    case 'monthly':
      return t('plans.monthly', {day: ordinalDay(schedule.day), at});
    case 'yearly':
      return t('plans.yearly', {opens: monthDay(schedule.opens), due: monthDay(schedule.due), at});
    case 'every_months':
      return t('plans.everyMonths', {n: fmtNum(schedule.months, 0), day: ordinalDay(Number(String(schedule.anchor).slice(8, 10))),
        at, from: schedule.anchor});
    case 'run_hours':
      return t('plans.runHours', {n: fmtNum(schedule.every_hours, 0), lead: fmtNum(schedule.lead_hours || 0, 0),
        days: fmtNum(schedule.due_days || 14, 0)});
    default:
      return schedule.type;
  }
}

function scopeText(ctx, plan) {
  const parts = [has(`plans.scope.${plan.scope}`) ? t(`plans.scope.${plan.scope}`) : plan.scope || '—'];
  if (plan.rooms && plan.rooms.length) parts.push(joined(plan.rooms.map((r) => roomName(ctx, r))));
  if (plan.pump_kinds && plan.pump_kinds.length) parts.push(joined(plan.pump_kinds.map((k) => word('pumpKind', k))));
  if (plan.assets && plan.assets.length) parts.push(joined(plan.assets.map((a) => equipmentName(ctx, a))));
  return parts.join(' · ');
}

function itemSpec(item) {
  const bits = [word('plans.itemType', item.type || 'pass_fail')];
  if (item.expected) bits.push(`${fmtNum(item.expected[0], 3)}–${fmtNum(item.expected[1], 3)}${item.of_rated_current ? ` × ${t('plans.ratedCurrent')}` : ''} ${item.unit || ''}`.trim());
  if (item.attachment === 'required' || item.type === 'document') bits.push(t('plans.attachmentRequired'));
  return bits.join(' · ');
}

function exceptionsText(plan) {
  const out = [];
  for (const s of plan.skip || []) out.push(t('plans.skip', {date: s.date, reason: s.reason}));
  for (const r of plan.reschedule || []) out.push(t('plans.reschedule', {date: r.date, to: String(r.to).replace('T', ' ').slice(0, 16), reason: r.reason}));
  for (const b of plan.blackout || []) out.push(t(`plans.blackout.${b.action || 'postpone'}`, {start: b.start, end: b.end, reason: b.reason}));
  return out;
}

export async function plansPage(main, ctx, queryText) {
  const title = t('nav.plans');
  // One estate's plans: with several in scope, the address's or the one kept on this device (else the first).
  const estate = chosenEstate(ctx, new URLSearchParams(queryText || '').get('estate'), {all: false});
  const onEstate = withEstate(new URLSearchParams(), estate).toString();
  mount(main, pageHeader(title), loading());
  let plans;
  try {
    plans = (await get(`/api/plans${onEstate ? `?${onEstate}` : ''}`)).data;
  } catch (err) {
    mount(main, pageHeader(title), h('p', {class: 'error', role: 'alert'}, problemText(err)));
    return () => {};
  }
  const rows = plans.map((plan) => {
    const checklist = plan.checklist || [];
    const exceptions = exceptionsText(plan);
    return h('tr', {'data-plan': plan.id, class: plan.enabled === false ? 'is-disabled' : ''},
      h('th', {scope: 'row'}, h('strong', {}, pick(plan.name) || plan.id),
        plan.description ? h('p', {class: 'muted plan-desc'}, pick(plan.description)) : null,
        plan.enabled === false ? h('span', {class: 'chip req-cancelled'}, t('plans.disabled')) : null),
      h('td', {'data-schedule': ''}, scheduleText(plan.schedule),
        plan.lead_hours ? h('p', {class: 'muted'}, t('plans.lead', {n: fmtNum(plan.lead_hours, 0)})) : null),
      h('td', {}, scopeText(ctx, plan)),
      h('td', {}, plan.task_kind ? word('kind', plan.task_kind) : '—', plan.action === 'rotate' ? h('p', {class: 'muted'}, t('plans.rotate')) : null,
        plan.test_run ? h('p', {class: 'muted'}, t(`plans.testRun.${plan.test_run.start}`, {n: fmtNum(plan.test_run.minutes, 0)})) : null),
      h('td', {}, plan.priority ? t(`prio.${plan.priority}`) : '—'),
      h('td', {}, checklist.length ? h('details', {class: 'plan-items'}, h('summary', {}, t('plans.items', {n: fmtNum(checklist.length, 0)})),
        h('ol', {}, checklist.map((item) => h('li', {}, pick(item.text) || item.key, h('span', {class: 'muted'}, aside('', itemSpec(item)))))))
        : h('span', {class: 'muted'}, t('plans.noItems'))),
      h('td', {}, exceptions.length ? h('ul', {class: 'plain-list'}, exceptions.map((x) => h('li', {}, x))) : '—'),
      h('td', {}, plan.schedule && plan.schedule.type !== 'run_hours' ? h('a', {href: `#/calendar?${withEstate(new URLSearchParams({plan: plan.id}), estate)}`}, t('plans.seeCalendar')) : ''));
  });
  const picker = estateField(ctx, estate, (id) => { location.hash = `#/plans?estate=${encodeURIComponent(id)}`; }, {id: 'plans-estate', all: false});
  mount(main, pageHeader(title, h('div', {class: 'head-tools'}, h('a', {class: 'btn', href: `#/calendar${onEstate ? `?${onEstate}` : ''}`}, t('nav.calendar')))),
    picker ? h('form', {class: 'filters', 'aria-label': t('estate.label')}, picker) : null,
    h('p', {class: 'muted'}, t('plans.explain')),
    h('div', {class: 'table-wrap', tabindex: '0'}, h('table', {class: 'plans-table generic'},
      h('thead', {}, h('tr', {}, ['plans.name', 'plans.schedule', 'plans.scope', 'task.kind', 'task.priority', 'check.title',
        'plans.exceptions', ''].map((k) => h('th', {scope: 'col'}, k ? t(k) : h('span', {class: 'visually-hidden'}, t('nav.calendar')))))),
      h('tbody', {}, rows))));
  return () => {};
}

// --- the calendar -----------------------------------------------------------------------------------

/** The local day and plan of a plan key "plan:target@2026-12-06". */
function keyParts(planKey) {
  // "<estate>:<plan>:<target>@<day>"; keys from before estates have no estate part
  const m = /^(?:([^:]+):)?([^:]+):([^:@]+)@(\d{4}-\d{2}-\d{2})$/.exec(planKey || '');
  return m ? {estate: m[1] || null, plan: m[2], target: m[3], day: m[4]} : null;
}

/** What an entry shows: the task's state, overdue, created late; or the occurrence's plan status. */
export function entryStatus(entry, now = Date.now()) {
  const task = entry.task;
  if (task) {
    if (OPEN.includes(task.state) && task.due_at && new Date(task.due_at).getTime() < now) return 'overdue';
    return task.state;
  }
  return entry.status || 'scheduled';
}

function entryLabel(ctx, entry, plans) {
  const plan = plans.get(entry.plan);
  const name = plan ? pick(plan.name) : entry.plan;
  // A duty group has no name of its own in the site file: its room's name and "duty pumps".
  const group = entry.asset && !ctx.equipment.has(entry.asset) && plan && plan.scope === 'duty_group';
  const target = group ? `${roomName(ctx, entry.room)} ${t('plans.dutyGroup')}`
    : entry.targetName ? pick(entry.targetName) : entry.room ? roomName(ctx, entry.room) : '';
  return {name, target};
}

function entryChip(ctx, entry, plans, now) {
  const status = entryStatus(entry, now);
  const {name, target} = entryLabel(ctx, entry, plans);
  const statusText = has(`cal.status.${status}`) ? t(`cal.status.${status}`) : status;
  const late = entry.task && entry.task.late;
  const text = [h('span', {class: 'cal-name'}, name), target ? h('span', {class: 'cal-target'}, target) : null,
    h('span', {class: 'cal-status'}, statusText, late ? ` · ${t('cal.status.late')}` : '')];
  const attrs = {class: ['cal-entry', `cal-${status}`, late ? 'cal-late' : ''], 'data-status': status, 'data-plan-key': entry.planKey,
    title: `${name}${target ? ` · ${target}` : ''} · ${statusText}${entry.reason ? ` · ${entry.reason}` : ''}`};
  return entry.task ? h('a', {...attrs, href: `#/task/${entry.task.id}`, 'data-task-id': entry.task.id}, text) : h('span', attrs, text);
}

async function calendarEntries(month, filters) {
  const {start, end} = monthBounds(month);
  const q = withEstate(new URLSearchParams({due_after: start.toISOString(), due_before: end.toISOString(), limit: '500'}), filters.estate);
  if (filters.room) q.set('room', filters.room);
  const requests = [get(`/api/tasks?${q}`)];
  const now = Date.now();
  const days = Math.ceil((end.getTime() - now) / 86400000);
  if (days > 0) {
    const cq = withEstate(new URLSearchParams({days: String(Math.min(400, days))}), filters.estate);
    if (filters.room) cq.set('room', filters.room);
    if (filters.plan) cq.set('plan', filters.plan);
    requests.push(get(`/api/calendar?${cq}`));
  }
  const [tasks, calendar] = await Promise.all(requests);
  const byKey = new Map();
  for (const task of tasks.data) {
    if (!task.plan_key) continue;
    const parts = keyParts(task.plan_key);
    const plan = parts ? parts.plan : task.plan_key.split(':').at(-2) || task.plan_key;
    if (filters.plan && plan !== filters.plan) continue;
    byKey.set(task.plan_key, {planKey: task.plan_key, plan, day: parts ? parts.day : siteDay(task.due_at), room: task.room,
      targetName: null, task, dueAt: task.due_at});
  }
  for (const occ of calendar ? calendar.data : []) {
    const day = keyParts(occ.plan_key)?.day || siteDay(occ.due_at);
    const seen = byKey.get(occ.plan_key);
    if (seen) { seen.targetName = occ.target_name; seen.asset = occ.asset; continue; }
    if (siteMonth(new Date(`${day}T12:00:00Z`)) !== month) continue;
    byKey.set(occ.plan_key, {planKey: occ.plan_key, plan: occ.plan, day, room: occ.room, asset: occ.asset, targetName: occ.target_name, task: null,
      status: occ.status, reason: occ.reason, dueAt: occ.due_at});
  }
  return [...byKey.values()].sort((a, b) => a.day.localeCompare(b.day) || String(a.dueAt).localeCompare(String(b.dueAt)));
}

function monthGrid(ctx, month, entries, plans, now) {
  const {year, month: mon} = monthBounds(month);
  const first = siteParts(monthBounds(month).start).weekday; // 0 = Sunday
  const lead = (first + 6) % 7; // weeks start on Monday
  const today = siteDay(now);
  const cells = [];
  for (let i = 0; i < lead; i++) cells.push(h('div', {class: 'cal-cell is-outside', 'aria-hidden': 'true'}));
  for (let d = 1; d <= daysIn(year, mon); d++) {
    const day = `${month}-${String(d).padStart(2, '0')}`;
    const list = entries.filter((e) => e.day === day);
    cells.push(h('div', {class: ['cal-cell', day === today ? 'is-today' : ''], 'data-day': day, role: 'gridcell'},
      h('span', {class: 'cal-date'}, String(d)),
      list.length ? h('ul', {class: 'cal-list'}, list.map((e) => h('li', {}, entryChip(ctx, e, plans, now)))) : null));
  }
  const heads = WEEKDAYS.map((w) => h('div', {class: 'cal-head', role: 'columnheader'}, t(`plans.weekdayShort.${w}`)));
  return h('div', {class: 'cal-grid', role: 'grid', 'aria-label': t('cal.gridLabel', {month: monthTitle(month)})},
    h('div', {class: 'cal-row cal-heads', role: 'row'}, heads), h('div', {class: 'cal-days', role: 'row'}, cells));
}

function agenda(ctx, entries, plans, now) {
  const days = [...new Set(entries.map((e) => e.day))];
  if (!days.length) return h('p', {class: 'empty-state cal-agenda'}, t('cal.none'));
  const today = siteDay(now);
  const dayItem = (day) => h('li', {class: ['cal-agenda-day', day === today ? 'is-today' : ''], 'data-day': day},
    h('h3', {}, dayTitle(day)),
    h('ul', {class: 'cal-list'}, entries.filter((e) => e.day === day).map((e) => h('li', {}, entryChip(ctx, e, plans, now)))));
  // On a phone the days already past are folded away: today comes first, the earlier days on request.
  const earlier = days.filter((day) => day < today);
  const rest = days.filter((day) => day >= today);
  return h('div', {class: 'cal-agenda'},
    earlier.length ? h('details', {class: 'cal-earlier'}, h('summary', {}, t('cal.earlier', {n: fmtNum(earlier.length, 0)})),
      h('ol', {class: 'plain-list'}, earlier.map(dayItem))) : null,
    rest.length ? h('ol', {class: 'plain-list'}, rest.map(dayItem)) : null);
}

function monthTitle(month) {
  const [y, m] = month.split('-').map(Number);
  return t('cal.monthTitle', {y, m, name: new Intl.DateTimeFormat('en-GB', {month: 'long', timeZone: 'UTC'}).format(new Date(Date.UTC(y, m - 1, 15)))});
}

function dayTitle(day) {
  const date = new Date(`${day}T12:00:00Z`);
  return new Intl.DateTimeFormat(lang() === 'en' ? 'en-GB' : 'zh-CN', {month: 'long', day: 'numeric', weekday: 'short', timeZone: 'UTC'}).format(date);
}

const LEGEND = ['scheduled', 'raised', 'assigned', 'in_progress', 'done', 'verified', 'overdue', 'cancelled', 'skipped'];

export async function calendarPage(main, ctx, queryText) {
  const q = new URLSearchParams(queryText || '');
  const estate = chosenEstate(ctx, q.get('estate'), {all: false});
  // The chosen estate's days: its own time zone while this page shows it (the site's again on leaving).
  const zone = estateZone(ctx, estate);
  setTimeZone(zone);
  const filters = {month: /^\d{4}-\d{2}$/.test(q.get('month') || '') ? q.get('month') : siteMonth(), room: q.get('room') || '',
    plan: q.get('plan') || '', estate};
  const title = t('nav.calendar');
  const onEstate = withEstate(new URLSearchParams(), filters.estate).toString();
  mount(main, pageHeader(title), loading());
  let plans = new Map();
  try {
    plans = new Map((await get(`/api/plans${onEstate ? `?${onEstate}` : ''}`)).data.map((p) => [p.id, p]));
  } catch { /* names fall back to the plan ids */ }
  const slot = h('div', {class: 'cal-slot', 'aria-live': 'polite'});
  const heading = h('h2', {id: 'cal-month'});
  const remember = () => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) params.set(k, v);
    history.replaceState(null, '', `${location.pathname}${location.search}#/calendar?${params}`);
  };
  const render = async () => {
    heading.textContent = monthTitle(filters.month);
    slot.replaceChildren(loading());
    let entries;
    try {
      entries = await calendarEntries(filters.month, filters);
    } catch (err) {
      slot.replaceChildren(h('p', {class: 'error', role: 'alert'}, problemText(err)));
      return;
    }
    const now = Date.now();
    slot.dataset.month = filters.month;
    slot.dataset.entries = String(entries.length);
    slot.replaceChildren(monthGrid(ctx, filters.month, entries, plans, now), agenda(ctx, entries, plans, now));
  };
  const go = (delta) => { filters.month = delta ? shiftMonth(filters.month, delta) : siteMonth(); remember(); render(); };
  const prev = h('button', {type: 'button', class: 'btn', 'data-month': 'prev'}, t('cal.prev'));
  const next = h('button', {type: 'button', class: 'btn', 'data-month': 'next'}, t('cal.next'));
  const current = h('button', {type: 'button', class: 'btn', 'data-month': 'this'}, t('cal.thisMonth'));
  prev.addEventListener('click', () => go(-1));
  next.addEventListener('click', () => go(1));
  current.addEventListener('click', () => go(0));
  const room = select('cal-room', [['', t('alarms.all')], ...(filters.estate ? estateRooms(ctx, filters.estate) : ctx.site.rooms)
    .map((r) => [r.id, pick(r.name)])], filters.room);
  // Another estate: its own plans and rooms, so the page starts again from its address.
  const estatePicker = estateField(ctx, filters.estate, (id) => {
    location.hash = `#/calendar?${new URLSearchParams({month: filters.month, estate: id})}`;
  }, {id: 'cal-estate', all: false});
  const plan = select('cal-plan', [['', t('alarms.all')], ...[...plans.values()].filter((p) => p.schedule && p.schedule.type !== 'run_hours')
    .map((p) => [p.id, pick(p.name)])], filters.plan);
  room.addEventListener('change', () => { filters.room = room.value; remember(); render(); });
  plan.addEventListener('change', () => { filters.plan = plan.value; remember(); render(); });
  mount(main, pageHeader(title, h('div', {class: 'head-tools'}, h('a', {class: 'btn', href: `#/plans${onEstate ? `?${onEstate}` : ''}`}, t('nav.plans')))),
    h('p', {class: 'muted', 'data-zone': zone || ''}, t('cal.explain', {tz: zone || ''})),
    h('div', {class: 'cal-toolbar'}, h('div', {class: 'actions'}, prev, current, next), heading,
      h('form', {class: 'filters tb-filters', 'aria-label': t('cal.filters')}, estatePicker,
        h('div', {class: 'field field-inline'}, h('label', {for: 'cal-room'}, t('task.room')), room),
        h('div', {class: 'field field-inline'}, h('label', {for: 'cal-plan'}, t('plans.name')), plan))),
    h('ul', {class: 'cal-legend', 'aria-label': t('cal.legend')}, LEGEND.map((s) => h('li', {class: ['cal-entry', `cal-${s}`]},
      h('span', {class: 'cal-status'}, t(`cal.status.${s}`))))),
    slot);
  await render();
  return () => setTimeZone(ctx.site.timezone);
}


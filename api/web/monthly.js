// The monthly maintenance report as a report: figures with charts and translated names, repeat faults by
// equipment, rotation compliance, parts, the amendments made after it closed, the two signature lines
// with the sign action for whoever may sign, the archived PDF, and a print layout (margins, page numbers).

import {get, post} from './api.js';
import {equipmentName, loading, pageHeader} from './common.js';
import {announce, h, mount, toast} from './dom.js';
import {chosenEstate, estateField, withEstate} from './estatepick.js';
import {errorLine, problemText, when, whyNot} from './forms.js';
import {fmtDuration, fmtNum, has, lang, pick, t} from './i18n.js';
import {barChart, pct, ring, stackedChart} from './kpi.js';
import {actingRoles} from './approvals.js';
import {shiftMonth, siteMonth} from './sitetime.js';

const COUNTS = ['raised', 'responded', 'completed', 'verified', 'sent_back', 'cancelled', 'reopened', 'overdue'];
const END_STATES = [['open', 'info'], ['done', 'warn'], ['verified', 'ok'], ['cancelled', 'stale']];
const ROTATION = ['planned', 'confirmed', 'on_time', 'verified', 'failed', 'pending'];

const dash = (v) => (v === null || v === undefined || v === '' ? '—' : v);
const num = (v) => (v === null || v === undefined ? '—' : fmtNum(v, 0));
const minutes = (v) => (v === null || v === undefined ? '—' : fmtDuration(v * 60));
const kindName = (kind) => (has(`kind.${kind}`) ? t(`kind.${kind}`) : kind);

/** The report's address in the API: `/api/reports/monthly/<month>[/sign]?estate=…&format=…`. */
function reportPath(month, estate, {tail = '', ...query} = {}) {
  const q = withEstate(new URLSearchParams(query), estate).toString();
  return `/api/reports/monthly/${month}${tail}${q ? `?${q}` : ''}`;
}

function monthTitle(month) {
  const [y, m] = month.split('-').map(Number);
  return lang() === 'en'
    ? new Intl.DateTimeFormat('en-GB', {month: 'long', year: 'numeric', timeZone: 'UTC'}).format(new Date(Date.UTC(y, m - 1, 15)))
    : `${y} 年 ${m} 月`;
}

function table(caption, heads, rows, attrs = {}) {
  return h('div', {class: 'table-wrap', tabindex: '0'}, h('table', {class: 'report-table', ...attrs},
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, heads.map((x, i) => h('th', {scope: 'col', class: i ? 'num' : ''}, x)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell, i) => (i === 0 ? h('th', {scope: 'row'}, cell)
      : h('td', {class: 'num'}, cell))))))));
}

function section(id, title, ...children) {
  return h('section', {class: 'report-section', 'aria-labelledby': id, 'data-section': id}, h('h2', {id}, title), ...children);
}

function summary(report) {
  const totals = report.totals || {};
  const sla = report.sla || {};
  const slaDetail = (clock) => t('rep.slaDetail', {met: num(sla[clock]?.met), missed: num(sla[clock]?.missed)});
  return h('div', {class: 'report-kpis'},
    h('ul', {class: 'report-totals'}, ['raised', 'completed', 'verified', 'overdue'].map((key) => h('li', {'data-total': key},
      h('span', {class: 'kpi-value'}, num(totals[key])), h('span', {class: 'kpi-label'}, t(`rep.count.${key}`))))),
    h('div', {class: 'rings'},
      ring({key: 'response', label: t('rep.sla.response'), share: sla.response?.attainment, detail: slaDetail('response')}),
      ring({key: 'resolution', label: t('rep.sla.resolution'), share: sla.resolution?.attainment, detail: slaDetail('resolution')}),
      ring({key: 'rotation', label: t('rep.rotation'), share: report.rotation?.compliance,
        detail: t('rep.rotationDetail', {on: num(report.rotation?.on_time), planned: num(report.rotation?.planned)})})));
}

function tasksSection(report) {
  const kinds = Object.keys(report.tasks_by_kind || {});
  const ends = report.states_at_end || {};
  const chart = !Object.keys(ends).length ? null : stackedChart({title: t('rep.endStates'), id: 'rep-end-chart',
    legend: END_STATES.map(([key, tone]) => ({label: t(`rep.end.${key}`), tone})),
    rows: Object.keys(ends).map((kind) => ({key: kind, label: kindName(kind),
      parts: END_STATES.map(([key, tone]) => ({key, label: t(`rep.end.${key}`), value: ends[kind][key] || 0, tone}))}))});
  const rows = kinds.map((kind) => [kindName(kind), ...COUNTS.map((c) => num(report.tasks_by_kind[kind][c]))]);
  rows.push([h('strong', {}, t('rep.total')), ...COUNTS.map((c) => h('strong', {}, num(report.totals?.[c])))]);
  return section('rep-tasks', t('rep.tasks'), chart,
    kinds.length ? table(t('rep.tasksCaption'), [t('task.kind'), ...COUNTS.map((c) => t(`rep.count.${c}`))], rows, {'data-table': 'tasks'})
      : h('p', {class: 'empty-state'}, t('rep.noTasks')));
}

function slaSection(report) {
  const sla = report.sla || {};
  const rows = ['response', 'resolution'].map((clock) => [t(`rep.sla.${clock}`), num(sla[clock]?.decided), num(sla[clock]?.met),
    num(sla[clock]?.missed), pct(sla[clock]?.attainment), minutes(sla[clock]?.median_min), minutes(sla[clock]?.max_min)]);
  const bars = barChart({title: t('rep.slaChart'), id: 'rep-sla-chart', max: 1,
    bars: ['response', 'resolution'].map((clock) => ({key: clock, label: t(`rep.sla.${clock}`), value: sla[clock]?.attainment ?? 0,
      text: pct(sla[clock]?.attainment), tone: (sla[clock]?.attainment ?? 1) >= 0.9 ? 'ok' : (sla[clock]?.attainment ?? 1) >= 0.7 ? 'warn' : 'bad'}))});
  return section('rep-sla', t('rep.slaTitle'), h('p', {class: 'muted'}, t('rep.slaExplain')), bars,
    table(null, [t('rep.sla.clock'), t('rep.sla.decided'), t('rep.sla.met'), t('rep.sla.missed'), t('rep.sla.attainment'),
      t('rep.sla.median'), t('rep.sla.max')], rows, {'data-table': 'sla'}));
}

function repeatSection(ctx, report) {
  const faults = (report.repeat_faults || []).slice().sort((a, b) => b.faults - a.faults);
  return section('rep-repeat', t('rep.repeat'),
    h('p', {class: 'muted'}, t('rep.repeatExplain')),
    faults.length ? [barChart({title: t('rep.repeatChart'), id: 'rep-repeat-chart',
      bars: faults.map((row) => ({key: row.asset, label: equipmentName(ctx, row.asset), value: row.faults,
        text: t('rep.repeatBar', {faults: num(row.faults), repeats: num(row.repeats)}), tone: row.repeats ? 'bad' : 'warn'}))}),
    table(null, [t('task.asset'), t('rep.faults'), t('rep.repeats'), t('rep.alarmRepeats'), t('rep.faultReports')],
      faults.map((row) => [equipmentName(ctx, row.asset), num(row.faults), num(row.repeats), num(row.alarm_repeats), num(row.fault_reports)]),
      {'data-table': 'repeat'})] : h('p', {class: 'empty-state'}, t('rep.noRepeat')));
}

function rotationSection(report) {
  const r = report.rotation || {};
  return section('rep-rotation', t('rep.rotation'),
    barChart({title: t('rep.rotationChart'), id: 'rep-rotation-chart', max: Math.max(1, r.planned || 0),
      bars: ROTATION.map((key) => ({key, label: t(`rep.rot.${key}`), value: r[key] || 0,
        tone: key === 'failed' ? 'bad' : key === 'pending' ? 'warn' : 'ok'}))}),
    h('p', {}, t('rep.compliance', {pct: pct(r.compliance)})));
}

function partsSection(report) {
  const parts = report.parts_used || [];
  return section('rep-parts', t('rep.parts'), parts.length
    ? table(null, [t('rep.part'), t('rep.quantity'), t('rep.unit')], parts.map((p) => [p.part, fmtNum(p.quantity, 3), dash(p.unit)]), {'data-table': 'parts'})
    : h('p', {class: 'empty-state'}, t('rep.noParts')));
}

function amendmentsSection(report) {
  const list = report.amendments || [];
  return section('rep-amend', t('rep.amendments'), h('p', {class: 'muted'}, t('rep.amendExplain')),
    list.length ? h('ol', {class: 'amendments'}, list.map((a) => h('li', {'data-amendment': a.id},
      h('strong', {}, pick(a.what)), ' ', h('a', {href: `#/task/${a.task_id}`, class: 'no-print'}, t('task.title', {id: a.task_id})),
      h('p', {class: 'muted'}, t('rep.amendLine', {at: when(a.happened_at, true), month: a.counted_in}), a.why ? ` · ${a.why}` : '')))
    ) : h('p', {class: 'empty-state'}, t('rep.noAmendments')));
}

/** Whether this user may sign `line` now, and why not. */
function signVerdict(ctx, acting, report, line) {
  const sig = report.signatures || {};
  const role = line === 'approved' ? 'director' : 'supervisor';
  if (!acting.has(role)) return {ok: false, why: null};
  if (sig[line]) return {ok: false, why: null};
  if (Date.now() < new Date(report.ready_from).getTime()) return {ok: false, why: t('why.monthNotOverAt', {time: when(report.ready_from)})};
  const other = sig[line === 'approved' ? 'prepared' : 'approved'];
  if (other && other.user_id === ctx.me.id) return {ok: false, why: t('why.twoSigners')};
  if (line === 'prepared' && sig.approved) return {ok: false, why: t('rep.approvedAlready')};
  return {ok: true};
}

function signatureBlock(ctx, acting, report, month, estate, reload) {
  const error = errorLine();
  const line = (key) => {
    const sig = (report.signatures || {})[key];
    const verdict = signVerdict(ctx, acting, report, key);
    let action = null;
    if (verdict.ok) {
      action = h('button', {type: 'button', class: 'btn btn-primary no-print', 'data-sign': key}, t(`rep.sign.${key}`));
      action.addEventListener('click', async () => {
        if (!confirm(t(`rep.signConfirm.${key}`, {month: monthTitle(month)}))) return;
        action.disabled = true;
        try {
          await post(reportPath(month, estate, {tail: '/sign'}), {line: key});
          toast(t('rep.signed'));
          announce(t('rep.signed'));
          reload();
        } catch (err) {
          error.show(err);
          action.disabled = false;
        }
      });
    }
    return h('div', {class: 'sign-line', 'data-line': key, 'data-signed': sig ? 'true' : 'false'},
      h('p', {class: 'sign-role'}, t(`rep.line.${key}`)),
      h('p', {class: 'sign-name'}, sig ? sig.name : h('span', {class: 'sign-blank'}, ' ')),
      h('p', {class: 'sign-date muted'}, sig ? when(sig.at) : t('rep.dateBlank')),
      action, verdict.why ? whyNot(verdict.why) : null);
  };
  return section('rep-sign', t('rep.signatures'), h('div', {class: 'sign-lines'}, line('prepared'), line('approved')), error.el);
}

function archiveSection(report, month, estate) {
  const list = report.archive || [];
  if (!list.length) return null;
  return section('rep-archive', t('rep.archive'), h('ul', {class: 'plain-list'}, list.map((a) => h('li', {'data-edition': a.edition},
    h('a', {href: reportPath(month, estate, {format: 'pdf', edition: a.edition})}, t('rep.edition', {n: a.edition})), ' · ',
    when(a.archived_at, true), ' · ', has(`rep.archiveReason.${a.reason}`) ? t(`rep.archiveReason.${a.reason}`) : a.reason, ' · ',
    h('code', {class: 'sha', title: a.sha256}, `SHA-256 ${String(a.sha256).slice(0, 16)}…`)))));
}

function statusLine(report) {
  if (report.status === 'closed') {
    return t('rep.closedLine', {at: when(report.closed_at), how: has(`rep.closedBy.${report.closed_by}`) ? t(`rep.closedBy.${report.closed_by}`) : dash(report.closed_by)});
  }
  return t('rep.previewLine', {asOf: when(report.as_of), due: when(report.due_by, true)});
}

export async function monthlyPage(main, ctx, monthArg, queryText) {
  let month = /^\d{4}-\d{2}$/.test(monthArg || '') ? monthArg : shiftMonth(siteMonth(), -1);
  // One estate's report: with several in scope, the address's or the one kept on this device (else the first).
  let estate = chosenEstate(ctx, new URLSearchParams(queryText || '').get('estate'), {all: false});
  mount(main, pageHeader(t('nav.reports')), loading());
  let acting = new Map();
  try {
    acting = actingRoles(ctx, (await get('/api/users/deputies')).data);
  } catch { acting = actingRoles(ctx, []); }
  const body = h('article', {class: 'report-doc', 'aria-live': 'polite'});
  const input = h('input', {type: 'month', id: 'report-month', value: month});
  const links = h('div', {class: 'actions report-links'});
  const load = async () => {
    body.replaceChildren(loading());
    let report;
    try {
      report = await get(reportPath(month, estate));
    } catch (err) {
      body.replaceChildren(h('p', {class: 'error', role: 'alert'}, problemText(err)));
      return;
    }
    const closed = report.status === 'closed';
    const print = h('button', {type: 'button', class: 'btn', id: 'report-print'}, t('rep.print'));
    print.addEventListener('click', () => window.print());
    links.replaceChildren(print,
      h('a', {class: 'btn', id: 'report-pdf', href: reportPath(month, estate, {format: 'pdf'}), download: `pumpwatch-report-${month}.pdf`},
        closed ? t('rep.pdfArchived') : t('rep.pdfPreview')),
      h('a', {class: 'btn', href: reportPath(month, estate, {format: 'csv'}), download: `pumpwatch-report-${month}.csv`}, t('report.csv')));
    body.dataset.month = month;
    body.dataset.status = report.status;
    mount(body,
      h('header', {class: 'report-head'},
        h('p', {class: 'report-site'}, pick(report.site)),
        h('h2', {class: 'report-title', id: 'report-title'}, t('rep.title', {month: monthTitle(month)})),
        h('p', {}, h('span', {class: ['chip', closed ? 'req-approved' : 'req-pending'], 'data-report-status': report.status},
          t(`rep.status.${report.status}`)), ' ', statusLine(report))),
      summary(report),
      tasksSection(report),
      slaSection(report),
      repeatSection(ctx, report),
      rotationSection(report),
      partsSection(report),
      amendmentsSection(report),
      archiveSection(report, month, estate),
      signatureBlock(ctx, acting, report, month, estate, load),
      h('footer', {class: 'report-foot muted'}, t('rep.footer', {tz: report.timezone, built: when(report.built_at || report.as_of, true)})));
  };
  const go = (next) => {
    month = next;
    input.value = month;
    history.replaceState(null, '', `${location.pathname}${location.search}#/monthly/${month}${estate ? `?estate=${encodeURIComponent(estate)}` : ''}`);
    load();
  };
  input.addEventListener('change', () => { if (/^\d{4}-\d{2}$/.test(input.value)) go(input.value); });
  const prev = h('button', {type: 'button', class: 'btn', 'data-month': 'prev'}, t('cal.prev'));
  const next = h('button', {type: 'button', class: 'btn', 'data-month': 'next'}, t('cal.next'));
  prev.addEventListener('click', () => go(shiftMonth(month, -1)));
  next.addEventListener('click', () => go(shiftMonth(month, 1)));
  const estatePicker = estateField(ctx, estate, (id) => { estate = id; go(month); }, {id: 'report-estate', all: false});
  mount(main, pageHeader(t('nav.reports')),
    h('div', {class: 'report-toolbar no-print'}, h('div', {class: 'actions'}, prev,
      h('div', {class: 'field field-inline'}, h('label', {for: 'report-month'}, t('report.month')), input), next, estatePicker), links),
    body);
  await load();
  return () => {};
}


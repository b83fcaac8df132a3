// The portfolio report: the estates of the user's scope side by side for one month (GET
// /api/reports/portfolio), best first. A dense table sorted by any column (its header is a button; the
// order is kept in the address with the month), a month picker, the CSV download, and each estate's link
// to its monthly report.

import {get} from './api.js';
import {loading, pageHeader} from './common.js';
import {h, mount} from './dom.js';
import {problemText} from './forms.js';
import {fmtNum, pick, t} from './i18n.js';
import {pct} from './kpi.js';
import {shiftMonth, siteMonth} from './sitetime.js';

const share = (figure) => (figure ? figure.share : null);
// Each column: its key, how a row sorts by it, and whether more is better (the first click sorts best first).
const COLUMNS = [
  {key: 'rank', value: (r) => r.rank, better: 'low'},
  {key: 'estate', value: (r) => pick(r.name) || r.estate, better: 'low', text: true},
  {key: 'score', value: (r) => r.score, better: 'high'},
  {key: 'sla', value: (r) => share(r.sla), better: 'high'},
  {key: 'response', value: (r) => share(r.response), better: 'high'},
  {key: 'resolution', value: (r) => share(r.resolution), better: 'high'},
  {key: 'repeats', value: (r) => r.repeats, better: 'low'},
  {key: 'rotation', value: (r) => share(r.rotation), better: 'high'},
  {key: 'inspection', value: (r) => share(r.inspection), better: 'high'},
  {key: 'open_critical', value: (r) => r.open_critical, better: 'low'},
];

/** Rows ordered by `sort` ('asc' or 'desc'); rows without a value last, then by rank. */
export function sortRows(rows, key, dir) {
  const column = COLUMNS.find((c) => c.key === key) || COLUMNS[0];
  const sign = dir === 'desc' ? -1 : 1;
  return rows.slice().sort((a, b) => {
    const x = column.value(a);
    const y = column.value(b);
    if (x === null || x === undefined || y === null || y === undefined) {
      return (x === null || x === undefined) - (y === null || y === undefined) || a.rank - b.rank;
    }
    const order = column.text ? String(x).localeCompare(String(y)) : x - y;
    return sign * order || a.rank - b.rank;
  });
}

function shareCell(figure) {
  if (!figure || !figure.due) return '—';
  return h('span', {}, pct(figure.share), h('span', {class: 'muted of'}, ` ${fmtNum(figure.on_time, 0)}/${fmtNum(figure.due, 0)}`));
}

function cells(row, month) {
  return [
    h('td', {class: 'num col-rank'}, fmtNum(row.rank, 0)),
    h('th', {scope: 'row', class: 'col-estate'}, h('a', {href: `#/monthly/${month}?estate=${encodeURIComponent(row.estate)}`,
      'data-estate-report': row.estate}, pick(row.name) || row.estate)),
    h('td', {class: 'num', 'data-cell': 'score'}, pct(row.score)),
    h('td', {class: 'num', 'data-cell': 'sla'}, shareCell(row.sla)),
    h('td', {class: 'num'}, pct(share(row.response))),
    h('td', {class: 'num'}, pct(share(row.resolution))),
    h('td', {class: 'num', 'data-cell': 'repeats'}, fmtNum(row.repeats, 0),
      row.repeats ? h('span', {class: 'muted of'}, ` ${t('pf.pairs', {n: fmtNum(row.repeat_faults, 0)})}`) : null),
    h('td', {class: 'num', 'data-cell': 'rotation'}, shareCell(row.rotation)),
    h('td', {class: 'num', 'data-cell': 'inspection'}, shareCell(row.inspection)),
    h('td', {class: ['num', row.open_critical ? 'is-bad' : ''], 'data-cell': 'open_critical'}, fmtNum(row.open_critical, 0)),
  ];
}

function table(report, month, sort, onSort) {
  const heads = COLUMNS.map((c) => {
    const current = sort.key === c.key;
    const button = h('button', {type: 'button', class: 'sort-button', 'data-sort': c.key}, t(`pf.col.${c.key}`),
      h('span', {class: 'sort-mark', 'aria-hidden': 'true'}, current ? (sort.dir === 'asc' ? ' ▲' : ' ▼') : ''));
    button.addEventListener('click', () => {
      const first = c.better === 'high' ? 'desc' : 'asc';
      onSort({key: c.key, dir: current ? (sort.dir === 'asc' ? 'desc' : 'asc') : first});
    });
    return h('th', {scope: 'col', class: {rank: 'num col-rank', estate: 'col-estate'}[c.key] || 'num',
      'aria-sort': current ? (sort.dir === 'asc' ? 'ascending' : 'descending') : undefined}, button);
  });
  const rows = sortRows(report.data, sort.key, sort.dir);
  return h('div', {class: 'table-wrap', tabindex: '0', role: 'region', 'aria-labelledby': 'pf-caption'},
    h('table', {class: 'report-table portfolio-table', id: 'portfolio-table'},
      h('caption', {id: 'pf-caption'}, t('pf.caption', {n: fmtNum(report.count, 0)})),
      h('thead', {}, h('tr', {}, heads)),
      h('tbody', {}, rows.length ? rows.map((row) => h('tr', {'data-estate': row.estate, 'data-rank': row.rank}, cells(row, month)))
        : h('tr', {}, h('td', {colspan: COLUMNS.length, class: 'empty'}, t('pf.none'))))));
}

/** The portfolio report: #/portfolio?month=2026-11&sort=sla&dir=desc. */
export async function portfolioPage(main, ctx, queryText) {
  const q = new URLSearchParams(queryText || '');
  let month = /^\d{4}-\d{2}$/.test(q.get('month') || '') ? q.get('month') : shiftMonth(siteMonth(), -1);
  const sort = {key: COLUMNS.some((c) => c.key === q.get('sort')) ? q.get('sort') : 'rank', dir: q.get('dir') === 'desc' ? 'desc' : 'asc'};
  let report = null;
  let stopped = false;
  const title = t('nav.portfolio');
  const body = h('div', {class: 'portfolio-slot', 'aria-live': 'polite'});
  const input = h('input', {type: 'month', id: 'portfolio-month', value: month});
  const csv = h('a', {class: 'btn', id: 'portfolio-csv'}, t('report.csv'));
  const remember = () => {
    const params = new URLSearchParams({month});
    if (sort.key !== 'rank') params.set('sort', sort.key);
    if (sort.dir !== 'asc') params.set('dir', sort.dir);
    history.replaceState(null, '', `${location.pathname}${location.search}#/portfolio?${params}`);
  };
  const draw = () => {
    if (!report) return;
    body.dataset.month = month;
    body.replaceChildren(table(report, month, sort, (next) => {
      Object.assign(sort, next);
      remember();
      draw();
      body.querySelector(`[data-sort="${sort.key}"]`)?.focus();
    }));
  };
  const load = async () => {
    csv.href = `/api/reports/portfolio?month=${month}&format=csv`;
    csv.setAttribute('download', `pumpwatch-portfolio-${month}.csv`);
    body.replaceChildren(loading());
    try {
      report = await get(`/api/reports/portfolio?month=${month}`);
    } catch (err) {
      report = null;
      if (!stopped) body.replaceChildren(h('p', {class: 'error', role: 'alert'}, problemText(err)));
      return;
    }
    if (!stopped) draw();
  };
  const go = (next) => {
    month = next;
    input.value = month;
    remember();
    load();
  };
  input.addEventListener('change', () => { if (/^\d{4}-\d{2}$/.test(input.value)) go(input.value); });
  const prev = h('button', {type: 'button', class: 'btn', 'data-month': 'prev'}, t('cal.prev'));
  const next = h('button', {type: 'button', class: 'btn', 'data-month': 'next'}, t('cal.next'));
  prev.addEventListener('click', () => go(shiftMonth(month, -1)));
  next.addEventListener('click', () => go(shiftMonth(month, 1)));
  mount(main, pageHeader(title),
    h('div', {class: 'report-toolbar portfolio-toolbar'}, h('div', {class: 'actions'}, prev,
      h('div', {class: 'field field-inline'}, h('label', {for: 'portfolio-month'}, t('report.month')), input), next),
    h('div', {class: 'actions'}, csv)),
    h('p', {class: 'muted'}, t('pf.explain')),
    body,
    h('details', {class: 'pf-help'}, h('summary', {}, t('pf.help')),
      h('dl', {class: 'facts'}, ['score', 'sla', 'repeats', 'rotation', 'inspection', 'open_critical'].flatMap((k) => [
        h('dt', {}, t(`pf.col.${k}`)), h('dd', {}, t(`pf.def.${k}`))]))));
  await load();
  return () => { stopped = true; };
}

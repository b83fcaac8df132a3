// Trend charts as inline SVG drawn at their real pixel size (labels 12 px and more on any screen): the mean
// as a line, min..max as a band, the thresholds in force as dashed lines with the alarm zone beyond them
// shaded, the unit on the value axis. Hover (or touch) shows the value under the pointer; dragging across
// the chart zooms into that stretch of time. The room's trend panel adds ranges, a day picker, the step
// in words and a CSV export of exactly what is shown.

import {get} from './api.js';
import {ANALOG_KINDS, digitsFor} from './common.js';
import {h, s} from './dom.js';
import {fmtDateTime, fmtNum, fmtTime, getTimeZone, pick, t} from './i18n.js';

const H = 220;
const PAD = {left: 60, right: 14, top: 26, bottom: 30};
export const POINTS = 240; // per chart: plenty for the widest card
// The room's key sensors first: what says at a glance whether water is delivered.
const KIND_ORDER = ['pressure', 'level', 'current', 'flow', 'differential_pressure', 'temperature', 'voltage',
  'vibration', 'battery'];
const SEV_CLASS = {critical: 'bad', major: 'bad', minor: 'warn', warning: 'warn'};

function niceTicks(min, max, count = 4) {
  if (!(max > min)) { max = min + 1; min -= 1; }
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((v) => v >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return {ticks, step};
}

/** Seconds as words: "42 分钟", "2 小时 30 分", "30 秒". */
export function stepWords(seconds) {
  const sec = Math.round(seconds);
  if (sec < 90) return t('chart.words.s', {n: sec});
  if (sec < 5400) return t('chart.words.m', {n: Math.round(sec / 60)});
  const hours = Math.floor(sec / 3600);
  const minutes = Math.round((sec % 3600) / 60);
  return minutes ? t('chart.words.hm', {h: hours, m: minutes}) : t('chart.words.h', {n: hours});
}

/** The thresholds worth drawing: all inside the data's span, and the nearest one beyond it on each side. */
function shownLimits(limits, lo, hi) {
  const below = limits.filter((l) => l.value < lo).sort((a, b) => b.value - a.value).slice(0, 1);
  const above = limits.filter((l) => l.value > hi).sort((a, b) => a.value - b.value).slice(0, 1);
  return [...limits.filter((l) => l.value >= lo && l.value <= hi), ...below, ...above];
}

/**
 * Draw points [{ts, mean, min, max}] (ts: epoch seconds) between start and end, `width` pixels wide.
 * `thresholds` are those of GET /api/sensors; `onZoom(start, end)` is called after a drag across the chart.
 * Returns an <svg> with role="img" and a text summary as its accessible name.
 */
export function trendChart({points, start, end, unit, digits = 2, title, thresholds = [], width = 640, onZoom}) {
  const W = Math.max(280, Math.round(width));
  const inside = points.filter((p) => p.ts >= start && p.ts <= end && Number.isFinite(p.mean));
  const values = inside.flatMap((p) => [p.min ?? p.mean, p.max ?? p.mean]).filter(Number.isFinite);
  let lo = values.length ? Math.min(...values) : 0;
  let hi = values.length ? Math.max(...values) : 1;
  const limits = values.length ? shownLimits(thresholds || [], lo, hi) : [];
  for (const l of limits) { lo = Math.min(lo, l.value); hi = Math.max(hi, l.value); }
  if (hi - lo < 1e-9) { hi += Math.abs(hi) * 0.05 || 0.5; lo -= Math.abs(lo) * 0.05 || 0.5; }
  const {ticks, step} = niceTicks(lo, hi);
  const tickDigits = Math.min(4, Math.max(0, 1 - Math.floor(Math.log10(step))));
  lo = Math.min(lo, ticks[0]);
  hi = Math.max(hi, ticks[ticks.length - 1]);
  const x = (ts) => PAD.left + ((ts - start) / (end - start)) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - ((v - lo) / (hi - lo)) * (H - PAD.top - PAD.bottom);
  const tsAt = (px) => start + ((px - PAD.left) / (W - PAD.left - PAD.right)) * (end - start);

  const parts = [];
  for (const l of limits) { // the alarm zone beyond each limit
    const edge = l.when === 'below' ? H - PAD.bottom : PAD.top;
    parts.push(s('rect', {class: `zone zone-${SEV_CLASS[l.severity] || 'warn'}`, x: PAD.left, width: W - PAD.left - PAD.right,
      y: Math.min(edge, y(l.value)), height: Math.abs(edge - y(l.value))}));
  }
  for (const v of ticks) {
    parts.push(s('line', {class: 'grid', x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v)}));
    parts.push(s('text', {class: 'tick', x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end'}, fmtNum(v, tickDigits)));
  }
  parts.push(s('text', {class: 'axis-unit', x: 4, y: 14}, unit || ''));
  const span = end - start;
  const labels = W < 420 ? 2 : 4;
  for (let i = 0; i <= labels; i++) {
    const ts = start + (span * i) / labels;
    const label = span > 2 * 86400 ? fmtDateTime(ts * 1000, true) : fmtTime(ts * 1000, span <= 600);
    parts.push(s('text', {class: 'tick', x: x(ts), y: H - 9, 'text-anchor': i === 0 ? 'start' : i === labels ? 'end' : 'middle'}, label));
  }
  for (const l of limits) {
    parts.push(s('line', {class: `limit limit-${SEV_CLASS[l.severity] || 'warn'}`, x1: PAD.left, x2: W - PAD.right,
      y1: y(l.value), y2: y(l.value), 'data-limit': l.value}));
    // The label sits inside the alarm zone, unless that would put it on the time axis or off the top.
    const below = l.when === 'below' ? y(l.value) + 14 <= H - PAD.bottom - 2 : y(l.value) - 5 < PAD.top + 10;
    parts.push(s('text', {class: `limit-label limit-${SEV_CLASS[l.severity] || 'warn'}`, x: W - PAD.right - 4,
      y: y(l.value) + (below ? 14 : -5), 'text-anchor': 'end'},
    `${t(`sev.${l.severity}`)} ${l.when === 'below' ? '<' : '>'} ${fmtNum(l.value, digits)}`));
  }
  if (inside.length) {
    const band = inside.map((p) => `${x(p.ts).toFixed(1)},${y(p.max ?? p.mean).toFixed(1)}`)
      .concat(inside.slice().reverse().map((p) => `${x(p.ts).toFixed(1)},${y(p.min ?? p.mean).toFixed(1)}`));
    parts.push(s('polygon', {class: 'band', points: band.join(' ')}));
    // Break the line where data is missing (a gap of more than 3 steps).
    const steps = inside.slice(1).map((p, i) => p.ts - inside[i].ts).sort((a, b) => a - b);
    const usual = steps.length ? steps[Math.floor(steps.length / 2)] : 0;
    let d = '';
    inside.forEach((p, i) => {
      const gap = i > 0 && usual > 0 && p.ts - inside[i - 1].ts > 3 * usual;
      d += `${i === 0 || gap ? 'M' : 'L'}${x(p.ts).toFixed(1)},${y(p.mean).toFixed(1)}`;
    });
    parts.push(s('path', {class: 'line', d}));
    const last = inside[inside.length - 1];
    parts.push(s('circle', {class: 'dot', cx: x(last.ts), cy: y(last.mean), r: 3}));
  } else {
    parts.push(s('text', {class: 'nodata', x: W / 2, y: H / 2, 'text-anchor': 'middle'}, t('chart.nodata')));
  }
  const means = inside.map((p) => p.mean);
  const summary = inside.length
    ? t('chart.summary', {
      title, min: fmtNum(Math.min(...inside.map((p) => p.min ?? p.mean)), digits),
      max: fmtNum(Math.max(...inside.map((p) => p.max ?? p.mean)), digits),
      last: fmtNum(means[means.length - 1], digits), unit,
    })
    : `${title}: ${t('chart.nodata')}`;

  // Hover: a cursor line and the value of the nearest point; drag: the stretch to zoom into.
  const cursor = s('line', {class: 'cursor', x1: 0, x2: 0, y1: PAD.top, y2: H - PAD.bottom, visibility: 'hidden'});
  const tipBox = s('rect', {class: 'tip-box', rx: 4, height: 40, width: 10});
  const tipText = s('text', {class: 'tip-text'}, s('tspan', {class: 'tip-time'}), s('tspan', {class: 'tip-value'}));
  const tip = s('g', {class: 'tip', visibility: 'hidden'}, tipBox, tipText);
  const pick1 = s('rect', {class: 'selection', y: PAD.top, height: H - PAD.top - PAD.bottom, width: 0, visibility: 'hidden'});
  const svg = s('svg', {class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': summary,
    'data-points': String(inside.length), 'data-start': start, 'data-end': end},
  s('title', {}, summary), ...parts, pick1, cursor, tip);
  const local = (event) => {
    const rect = svg.getBoundingClientRect();
    return (event.clientX - rect.left) * (W / rect.width);
  };
  const show = (px) => {
    if (!inside.length || px < PAD.left || px > W - PAD.right) { cursor.setAttribute('visibility', 'hidden'); tip.setAttribute('visibility', 'hidden'); return; }
    const ts = tsAt(px);
    let best = inside[0];
    for (const p of inside) if (Math.abs(p.ts - ts) < Math.abs(best.ts - ts)) best = p;
    const cx = x(best.ts);
    cursor.setAttribute('x1', cx);
    cursor.setAttribute('x2', cx);
    cursor.setAttribute('visibility', 'visible');
    tipText.querySelector('.tip-time').textContent = span > 86400 ? fmtDateTime(best.ts * 1000, true) : fmtTime(best.ts * 1000, span <= 3600);
    const range = best.min != null && best.max != null && best.max - best.min > 1e-9
      ? ` (${fmtNum(best.min, digits)}–${fmtNum(best.max, digits)})` : '';
    tipText.querySelector('.tip-value').textContent = `${fmtNum(best.mean, digits)} ${unit || ''}${range}`;
    const textW = Math.max(tipText.querySelector('.tip-time').textContent.length, tipText.querySelector('.tip-value').textContent.length) * 7.6 + 16;
    const tx = cx + 10 + textW > W ? cx - 10 - textW : cx + 10;
    tipBox.setAttribute('width', textW);
    tipBox.setAttribute('x', tx);
    tipBox.setAttribute('y', PAD.top);
    tipText.setAttribute('x', tx + 8);
    tipText.setAttribute('y', PAD.top + 16);
    tipText.querySelector('.tip-time').setAttribute('x', tx + 8);
    tipText.querySelector('.tip-value').setAttribute('x', tx + 8);
    tipText.querySelector('.tip-value').setAttribute('dy', 17);
    tip.setAttribute('visibility', 'visible');
    svg.dataset.hover = String(best.ts);
  };
  let dragFrom = null;
  svg.addEventListener('pointerdown', (event) => {
    if (!onZoom || event.button > 0) return;
    dragFrom = Math.min(Math.max(local(event), PAD.left), W - PAD.right);
    svg.setPointerCapture?.(event.pointerId);
  });
  svg.addEventListener('pointermove', (event) => {
    const px = local(event);
    show(px);
    if (dragFrom === null) return;
    const to = Math.min(Math.max(px, PAD.left), W - PAD.right);
    pick1.setAttribute('x', Math.min(dragFrom, to));
    pick1.setAttribute('width', Math.abs(to - dragFrom));
    pick1.setAttribute('visibility', 'visible');
  });
  const finish = (event) => {
    if (dragFrom === null) return;
    const to = Math.min(Math.max(local(event), PAD.left), W - PAD.right);
    const from = dragFrom;
    dragFrom = null;
    pick1.setAttribute('visibility', 'hidden');
    if (Math.abs(to - from) >= 8) {
      const a = tsAt(Math.min(from, to));
      const b = tsAt(Math.max(from, to));
      if (b - a >= 60) onZoom(a, b);
    }
  };
  svg.addEventListener('pointerup', finish);
  svg.addEventListener('pointercancel', () => { dragFrom = null; pick1.setAttribute('visibility', 'hidden'); });
  svg.addEventListener('pointerleave', () => { if (dragFrom === null) show(-1); });
  return svg;
}

// --- CSV ----------------------------------------------------------------------------------------

const FORMULA_STARTS = ['=', '+', '-', '@', '\t', '\r'];

/** A cell a spreadsheet shows as written (maintenance/exports.py): text that could start a formula gets `'`. */
export function safeCell(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '';
  const text = String(value);
  const safe = FORMULA_STARTS.some((c) => text.startsWith(c)) ? `'${text}` : text;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function csvText(header, rows) {
  return `\ufeff${[header, ...rows].map((row) => row.map(safeCell).join(',')).join('\r\n')}\r\n`;
}

/** The local time of an epoch-seconds instant in the site's zone, as a spreadsheet reads it. */
function localStamp(ts) {
  const parts = new Intl.DateTimeFormat('en-CA', {timeZone: getTimeZone(), year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23'}).formatToParts(new Date(ts * 1000));
  const get = (type) => parts.find((p) => p.type === type)?.value || '';
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')}:${get('second')}`;
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], {type: 'text/csv;charset=utf-8'}));
  const a = h('a', {href: url, download: name, hidden: true});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// --- the room's trend panel ---------------------------------------------------------------------

const RANGES = [
  {key: '1h', seconds: 3600, live: true},
  {key: '6h', seconds: 6 * 3600},
  {key: '24h', seconds: 86400},
  {key: '7d', seconds: 7 * 86400},
  {key: '30d', seconds: 30 * 86400},
];

/** Epoch seconds of 00:00 of a YYYY-MM-DD day in the site's time zone. */
export function zonedMidnight(day) {
  const [yy, mm, dd] = day.split('-').map(Number);
  let guess = Date.UTC(yy, mm - 1, dd) / 1000;
  for (let i = 0; i < 2; i++) { // the zone's offset at that instant, found by formatting it there
    const shown = localStamp(guess).replace(' ', 'T');
    const asUtc = Date.parse(`${shown}Z`) / 1000;
    guess -= asUtc - Date.UTC(yy, mm - 1, dd) / 1000;
  }
  return guess;
}

/**
 * The trends of a room: {el, feed(batch), stop()}. `now()` gives the server's clock (epoch seconds); `feed`
 * takes live readings (added to the last hour while it is shown).
 */
export function trendPanel(ctx, room, now) {
  const sensors = [...ctx.sensors.values()].filter((x) => x.room === room.id && ANALOG_KINDS.includes(x.kind))
    .sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind));
  let range = RANGES[0];
  let view = null; // {start, end}: a zoom or a picked day
  let shown = {start: 0, end: 0, step: 1};
  const series = new Map();
  const dirty = new Set();
  let token = 0;
  const rangeButtons = h('div', {class: 'segmented', role: 'group', 'aria-label': t('room.range')},
    RANGES.map((r) => h('button', {type: 'button', class: 'btn', 'data-range': r.key, 'aria-pressed': String(r === range)},
      t(`room.range.${r.key}`))));
  const day = h('input', {type: 'date', id: `trend-day-${room.id}`, class: 'trend-day'});
  const reset = h('button', {type: 'button', class: 'btn', 'data-action': 'unzoom', hidden: true}, t('chart.unzoom'));
  const exportAll = h('button', {type: 'button', class: 'btn btn-secondary', 'data-action': 'csv'}, t('chart.csv'));
  const note = h('p', {class: 'muted range-note', 'aria-live': 'polite'});
  const charts = h('div', {class: 'charts'});
  const cards = new Map();
  for (const info of sensors) {
    const slot = h('div', {class: 'chart-slot'});
    const csv = h('button', {type: 'button', class: 'btn btn-quiet chart-csv', 'data-csv': info.id,
      title: t('chart.csvOne', {name: pick(info.name) || info.id})}, 'CSV',
    h('span', {class: 'visually-hidden'}, ` ${pick(info.name) || info.id}`));
    csv.addEventListener('click', () => exportCsv([info]));
    charts.append(h('figure', {class: 'chart-card', 'data-chart': info.id, 'data-kind': info.kind},
      h('figcaption', {}, h('span', {class: 'chart-title'}, pick(info.name) || info.id),
        h('span', {class: 'chart-tools'},
          h('span', {class: 'sensor chart-value', 'data-sensor': info.id, 'data-state': 'stale'},
            h('span', {class: 'num'}, '—'), ' ', h('span', {class: 'unit'}), ' ', h('span', {class: 'sensor-chip'})),
          csv)),
      slot));
    cards.set(info.id, slot);
  }
  const el = h('section', {class: 'panel trends', 'aria-labelledby': `trends-h-${room.id}`},
    h('div', {class: 'section-head'}, h('h2', {id: `trends-h-${room.id}`}, t('room.trends')), rangeButtons),
    h('div', {class: 'trend-tools'},
      h('span', {class: 'field field-inline'}, h('label', {for: day.id}, t('chart.day')), day),
      reset, exportAll),
    note, h('p', {class: 'muted chart-hint'}, t('chart.hint')), charts);

  const draw = (id) => {
    const info = ctx.sensors.get(id);
    const slot = cards.get(id);
    const width = slot.clientWidth || 600;
    slot.replaceChildren(trendChart({points: series.get(id) || [], start: shown.start, end: shown.end, unit: info.unit,
      digits: digitsFor(info.kind), title: pick(info.name) || id, thresholds: info.thresholds, width,
      onZoom: (a, b) => { view = {start: a, end: b}; load(); }}));
  };
  const load = async () => {
    const mine = ++token;
    const end = view ? view.end : now();
    const start = view ? view.start : end - range.seconds;
    const step = Math.max(1, Math.ceil((end - start) / POINTS));
    shown = {start, end, step};
    reset.hidden = !view;
    note.textContent = t('room.stepWords', {step: stepWords(step)})
      + (view ? ` ${t('chart.showing', {from: fmtDateTime(start * 1000, true), to: fmtDateTime(end * 1000, true)})}` : '');
    charts.dataset.loading = 'true';
    await Promise.all(sensors.map(async (info) => {
      try {
        const place = info.estate ? `&estate=${encodeURIComponent(info.estate)}` : '';
        const page = await get(`/api/sensors/${encodeURIComponent(info.id)}/history?start=${start}&end=${end + 1}&step=${step}${place}`);
        if (mine !== token) return;
        series.set(info.id, page.data);
      } catch {
        if (mine !== token) return;
        series.set(info.id, []);
      }
      draw(info.id);
    }));
    if (mine !== token) return;
    delete charts.dataset.loading;
    charts.dataset.loaded = view ? 'zoom' : range.key;
  };
  const exportCsv = (list) => {
    const rows = [];
    for (const info of list) {
      for (const p of series.get(info.id) || []) {
        if (p.ts < shown.start || p.ts > shown.end) continue;
        rows.push([localStamp(p.ts), pick(info.name) || info.id, info.id, p.mean, p.min, p.max, p.count, info.unit || '']);
      }
    }
    const header = ['time', 'sensor', 'sensor_id', 'mean', 'min', 'max', 'count', 'unit'].map((k) => t(`chart.col.${k}`));
    const name = `${room.id}-${list.length === 1 ? list[0].id : 'trends'}-${localStamp(shown.start).slice(0, 16).replace(/[: ]/g, '')}.csv`;
    download(name, csvText(header, rows));
    charts.dataset.exported = String(rows.length);
  };
  exportAll.addEventListener('click', () => exportCsv(sensors));
  rangeButtons.addEventListener('click', (event) => {
    const button = event.target.closest('[data-range]');
    if (!button) return;
    range = RANGES.find((r) => r.key === button.dataset.range);
    view = null;
    day.value = '';
    for (const b of rangeButtons.querySelectorAll('[data-range]')) b.setAttribute('aria-pressed', String(b === button));
    load();
  });
  day.addEventListener('change', () => {
    if (!day.value) { view = null; load(); return; }
    const start = zonedMidnight(day.value);
    view = {start, end: start + 86400};
    for (const b of rangeButtons.querySelectorAll('[data-range]')) b.setAttribute('aria-pressed', 'false');
    load();
  });
  reset.addEventListener('click', () => {
    view = null;
    day.value = '';
    for (const b of rangeButtons.querySelectorAll('[data-range]')) b.setAttribute('aria-pressed', String(b.dataset.range === range.key));
    load();
  });
  const redraw = setInterval(() => {
    for (const id of dirty) draw(id);
    dirty.clear();
  }, 2000);
  let width = 0;
  const resized = new ResizeObserver(() => {
    if (charts.clientWidth && Math.abs(charts.clientWidth - width) > 20) {
      width = charts.clientWidth;
      for (const info of sensors) draw(info.id);
    }
  });
  resized.observe(charts);
  return {
    el,
    load,
    /** Live readings join the last hour while it is shown (not a zoom, a day or a longer range). */
    feed(batch) {
      if (!range.live || view) return;
      const end = now();
      shown = {...shown, start: end - range.seconds, end};
      for (const r of batch) {
        if (!series.has(r.sensor) || r.stale) continue;
        const points = series.get(r.sensor);
        points.push({ts: r.ts, mean: r.value, min: r.value, max: r.value, count: 1});
        while (points.length && points[0].ts < shown.start) points.shift();
        dirty.add(r.sensor);
      }
    },
    stop() { clearInterval(redraw); resized.disconnect(); token++; },
  };
}

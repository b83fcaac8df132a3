// Trend charts as inline SVG: the mean as a line, min..max as a band, time and value axes.

import {s} from './dom.js';
import {fmtNum, fmtTime, fmtDateTime, t} from './i18n.js';

const W = 640;
const H = 200;
const PAD = {left: 56, right: 12, top: 12, bottom: 28};

function niceTicks(min, max, count = 4) {
  if (!(max > min)) { max = min + 1; min -= 1; }
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((v) => v >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return {ticks, step};
}

/**
 * Draw points [{ts, mean, min, max}] (ts: epoch seconds) between start and end.
 * Returns an <svg> with role="img" and a text summary as its accessible name.
 */
export function trendChart({points, start, end, unit, digits = 2, title}) {
  const values = points.flatMap((p) => [p.min ?? p.mean, p.max ?? p.mean]).filter(Number.isFinite);
  let lo = values.length ? Math.min(...values) : 0;
  let hi = values.length ? Math.max(...values) : 1;
  if (hi - lo < 1e-9) { hi += Math.abs(hi) * 0.05 || 0.5; lo -= Math.abs(lo) * 0.05 || 0.5; }
  const {ticks, step} = niceTicks(lo, hi);
  const tickDigits = Math.min(4, Math.max(0, 1 - Math.floor(Math.log10(step))));
  lo = Math.min(lo, ticks[0]);
  hi = Math.max(hi, ticks[ticks.length - 1]);
  const x = (ts) => PAD.left + ((ts - start) / (end - start)) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - ((v - lo) / (hi - lo)) * (H - PAD.top - PAD.bottom);

  const parts = [];
  for (const v of ticks) {
    parts.push(s('line', {class: 'grid', x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v)}));
    parts.push(s('text', {class: 'tick', x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end'}, fmtNum(v, tickDigits)));
  }
  const span = end - start;
  for (let i = 0; i <= 4; i++) {
    const ts = start + (span * i) / 4;
    const label = span > 2 * 86400 ? fmtDateTime(ts * 1000, true) : fmtTime(ts * 1000, span <= 600);
    parts.push(s('text', {class: 'tick', x: x(ts), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle'}, label));
  }
  const inside = points.filter((p) => p.ts >= start && p.ts <= end && Number.isFinite(p.mean));
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
  return s('svg', {class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': summary,
    'data-points': String(inside.length)},
  s('title', {}, summary), ...parts);
}

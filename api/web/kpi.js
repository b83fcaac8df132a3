// Charts for figures (the overview's KPIs, the monthly report): horizontal bars and stacked bars in HTML,
// so their words wrap and keep the page's font size on a phone, and a ring for a share. Every chart is a
// figure with a caption; its numbers are in the text too (never told by length or colour alone).
// Widths are set through the CSSOM (element.style), which the page's Content-Security-Policy allows.

import {h, s} from './dom.js';
import {fmtNum, t} from './i18n.js';

/** A percentage as text ("87 %"), or "—" when there is nothing to count. */
export function pct(share) {
  return share === null || share === undefined || !Number.isFinite(share) ? '—' : `${fmtNum(share * 100, 0)} %`;
}

function fill(tone, share) {
  const el = h('span', {class: ['kbar-fill', `tone-${tone || 'info'}`]});
  el.style.width = `${Math.max(0, Math.min(100, share * 100)).toFixed(2)}%`;
  return el;
}

/**
 * Horizontal bars: [{key, label, value, tone, href}]; `max` defaults to the largest value. A bar with an
 * href is a link (the overview's counts lead to the filtered task board).
 */
export function barChart({title, bars, max, unit = '', id, empty}) {
  const top = max ?? Math.max(0, ...bars.map((b) => b.value || 0));
  const rows = bars.map((bar) => {
    const share = top > 0 ? (bar.value || 0) / top : 0;
    const inner = [
      h('span', {class: 'kbar-label'}, bar.label),
      h('span', {class: 'kbar-track', 'aria-hidden': 'true'}, fill(bar.tone, share)),
      h('span', {class: 'kbar-value'}, bar.text ?? `${fmtNum(bar.value, 0)}${unit ? ` ${unit}` : ''}`),
    ];
    return h('li', {class: 'kbar', 'data-bar': bar.key},
      bar.href ? h('a', {class: 'kbar-row', href: bar.href}, inner) : h('span', {class: 'kbar-row'}, inner));
  });
  return h('figure', {class: 'kchart', id, 'aria-labelledby': id ? `${id}-cap` : undefined},
    h('figcaption', {id: id ? `${id}-cap` : undefined}, title),
    bars.length ? h('ul', {class: 'kbars'}, rows) : h('p', {class: 'empty-state'}, empty || t('kpi.none')));
}

/**
 * Stacked bars, one per row: [{key, label, href, parts: [{key, label, value, tone}]}], with a legend.
 * Each row also says its parts in words ("3 open · 2 verified").
 */
export function stackedChart({title, rows, legend, id, empty}) {
  const top = Math.max(0, ...rows.map((r) => r.parts.reduce((sum, p) => sum + (p.value || 0), 0)));
  const items = rows.map((row) => {
    const total = row.parts.reduce((sum, p) => sum + (p.value || 0), 0);
    const track = h('span', {class: 'kbar-track kbar-stack', 'aria-hidden': 'true'},
      row.parts.filter((p) => p.value).map((p) => fill(p.tone, top ? p.value / top : 0)));
    const words = row.parts.filter((p) => p.value).map((p) => `${fmtNum(p.value, 0)} ${p.label}`).join(' · ');
    const inner = [h('span', {class: 'kbar-label'}, row.label), track,
      h('span', {class: 'kbar-value'}, fmtNum(total, 0)),
      h('span', {class: 'kbar-words muted'}, words || t('kpi.none'))];
    return h('li', {class: 'kbar', 'data-bar': row.key},
      row.href ? h('a', {class: 'kbar-row', href: row.href}, inner) : h('span', {class: 'kbar-row'}, inner));
  });
  return h('figure', {class: 'kchart', id},
    h('figcaption', {}, title),
    legend ? h('ul', {class: 'klegend'}, legend.map((l) => h('li', {},
      h('span', {class: ['kswatch', `tone-${l.tone}`], 'aria-hidden': 'true'}), l.label))) : null,
    rows.length ? h('ul', {class: 'kbars'}, items) : h('p', {class: 'empty-state'}, empty || t('kpi.none')));
}

/** A ring showing a share (0..1 or null), its percentage in the middle and words below. */
export function ring({label, share, detail, tone, key}) {
  const r = 40;
  const length = 2 * Math.PI * r;
  const known = share !== null && share !== undefined && Number.isFinite(share);
  const shown = known ? Math.max(0, Math.min(1, share)) : 0;
  const colour = tone || (!known ? 'stale' : shown >= 0.9 ? 'ok' : shown >= 0.7 ? 'warn' : 'bad');
  return h('figure', {class: ['kring', `tone-${colour}`], 'data-ring': key},
    h('div', {class: 'kring-art'},
      s('svg', {viewBox: '0 0 100 100', 'aria-hidden': 'true', focusable: 'false'},
        s('circle', {class: 'kring-bg', cx: 50, cy: 50, r}),
        s('circle', {class: 'kring-fg', cx: 50, cy: 50, r, 'stroke-dasharray': `${(shown * length).toFixed(2)} ${length.toFixed(2)}`,
          transform: 'rotate(-90 50 50)'})),
      h('span', {class: 'kring-value'}, pct(known ? share : null))),
    h('figcaption', {}, h('strong', {}, label), detail ? h('span', {class: 'muted'}, detail) : null));
}

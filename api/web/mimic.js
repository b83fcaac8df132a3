// The pump-room mimic (智慧泵房 style): one SVG per room, drawn from the site file. Water flows from the top:
// the break tank (or the supply), the pumps side by side with their run state and duty, the header with
// its pressure, the pressure tank; then the sump and the room's own sensors. Live values sit on the
// drawing ([data-sensor] text, painted by the board like every other value) and equipment with an active
// alarm is outlined in red. The drawing is 560 units wide and scales to its box: the text stays
// legible on a 390 px phone (20 units ≈ 12.5 px there).

import {s} from './dom.js';
import {pick, t} from './i18n.js';

const W = 560;
const PAD = 14;

/** The sensors of one piece of equipment, by kind (the first of each kind). */
function byKind(ctx, item) {
  const found = {};
  for (const id of item.sensors || []) {
    const kind = ctx.sensors.get(id)?.kind;
    if (kind && !(kind in found)) found[kind] = id;
  }
  return found;
}

/** Split a name into at most two lines of about `max` characters (CJK counts double). */
function wrap(text, max) {
  const width = (str) => [...str].reduce((n, ch) => n + (/[\u3000-\u9fff\uff00-\uffef]/.test(ch) ? 2 : 1), 0);
  if (width(text) <= max) return [text];
  const words = text.split(' ');
  if (words.length > 1) {
    let first = '';
    for (const word of words) {
      if (first && width(`${first} ${word}`) > max) break;
      first = first ? `${first} ${word}` : word;
    }
    return [first, text.slice(first.length).trim()];
  }
  const chars = [...text];
  const half = Math.ceil(chars.length / 2);
  return [chars.slice(0, half).join(''), chars.slice(half).join('')];
}

function label(x, y, text, {size = 20, anchor = 'middle', cls = 'mm-label', max = 14} = {}) {
  const lines = wrap(text, max);
  return s('text', {class: cls, x, y, 'text-anchor': anchor, 'font-size': size},
    lines.map((line, i) => s('tspan', {x, dy: i ? size * 1.1 : 0}, line)));
}

/** A live value: number and unit, coloured by its state (painted by the board's `paint`). */
function value(id, x, y, {size = 24, anchor = 'middle'} = {}) {
  if (!id) return null;
  return s('text', {class: 'mm-value sensor-svg', x, y, 'text-anchor': anchor, 'font-size': size, 'data-sensor': id,
    'data-state': 'stale'},
  s('tspan', {class: 'num'}, '—'), s('tspan', {class: 'unit', dx: 4, 'font-size': size * 0.7}, ''));
}

/** A leak detector: a drop that turns red when wet. */
function drop(id, x, y, ctx) {
  if (!id) return null;
  const name = pick(ctx.sensors.get(id)?.name) || id;
  return s('g', {class: 'mm-drop sensor-svg', 'data-sensor': id, 'data-state': 'stale', transform: `translate(${x} ${y})`},
    s('title', {}, name),
    s('path', {d: 'M0,-16 C8,-4 12,2 12,8 A12,12 0 0 1 -12,8 C-12,2 -8,-4 0,-16 Z'}),
    s('text', {class: 'mm-small', x: 18, y: 6, 'font-size': 20}, s('tspan', {class: 'num'}, '—'), s('tspan', {class: 'unit'}, '')));
}

/** A gate valve symbol (two triangles point to point) on a vertical pipe. */
function valve(x, y) {
  return s('path', {class: 'mm-valve', d: `M${x - 9},${y - 9} L${x + 9},${y + 9} L${x + 9},${y - 9} L${x - 9},${y + 9} Z`});
}

function vessel(x, y, w, h, levelId, kind, ctx) {
  const clip = `clip-${kind}-${levelId || Math.round(x)}`;
  return s('g', {class: `mm-vessel mm-${kind}`, 'data-level': levelId || ''},
    s('clipPath', {id: clip}, s('rect', {x, y, width: w, height: h, rx: 6})),
    s('rect', {class: 'mm-vessel-body', x, y, width: w, height: h, rx: 6}),
    s('rect', {class: 'mm-water', x, y: y + h, width: w, height: 0, 'clip-path': `url(#${clip})`,
      'data-fill': levelId || '', 'data-top': y, 'data-height': h}));
}

/**
 * The mimic of one room: {el, paint(alarms)}. `el` is an <svg> with a text alternative; `paint` colours the
 * equipment by its active alarms and moves the tank and sump levels (values are painted by the board).
 */
export function roomMimic(ctx, room) {
  const items = room.equipment || [];
  const tanks = items.filter((e) => e.type === 'tank');
  const filters = items.filter((e) => e.type === 'filter');
  const pumps = items.filter((e) => e.type === 'pump' && e.kind !== 'sewage');
  const sewage = items.filter((e) => e.type === 'pump' && e.kind === 'sewage');
  const headers = items.filter((e) => e.type === 'header');
  const ptanks = items.filter((e) => e.type === 'pressure_tank');
  const sumps = items.filter((e) => e.type === 'sump');
  const cabinets = items.filter((e) => e.type === 'cabinet');
  const roomOwn = (room.sensors || []).filter((id) => !items.some((e) => e.sensors.includes(id)));
  const duty = new Map();
  for (const group of room.duty_groups || []) group.pumps.forEach((p) => duty.set(p, group.id));
  const parts = [];
  const shapes = [];

  // Row 1: where the water comes from, and the control cabinet.
  const top = PAD;
  const tankH = 120;
  let supplyX = W / 2;
  if (tanks.length) {
    const tank = tanks[0];
    const k = byKind(ctx, tank);
    const x = PAD + 4;
    shapes.push(s('g', {class: 'mm-equip', 'data-equipment': tank.id},
      s('title', {}, pick(tank.name)),
      vessel(x, top + 24, 130, tankH - 24, k.level, 'tank', ctx),
      label(x + 65, top + 18, pick(tank.name), {max: 14}),
      value(k.level, x + 65, top + 24 + (tankH - 24) / 2 + 8)));
    supplyX = x + 65;
  } else {
    parts.push(label(PAD + 70, top + 60, t('mimic.supply'), {cls: 'mm-label mm-muted'}));
    supplyX = PAD + 70;
  }
  for (const [i, cab] of cabinets.slice(0, 1).entries()) {
    const k = byKind(ctx, cab);
    const x = W - PAD - 190;
    shapes.push(s('g', {class: 'mm-equip mm-cabinet', 'data-equipment': cab.id},
      s('title', {}, pick(cab.name)),
      s('rect', {class: 'mm-box', x, y: top + i * 10, width: 190, height: 108, rx: 8}),
      label(x + 95, top + 24, pick(cab.name), {size: 20, max: 18}),
      value(k.temperature, x + 95, top + 68, {size: 22}),
      value(k.voltage, x + 95, top + 96, {size: 22})));
  }
  if (filters.length) {
    const f = filters[0];
    const k = byKind(ctx, f);
    const x = tanks.length ? 200 : 170;
    shapes.push(s('g', {class: 'mm-equip mm-filter', 'data-equipment': f.id},
      s('title', {}, pick(f.name)),
      s('path', {class: 'mm-box', d: `M${x},${top + 70} l22,-22 l22,22 l-22,22 Z`}),
      label(x + 22, top + 22, pick(f.name), {size: 20, max: 10}),
      value(k.differential_pressure, x + 22, top + 116, {size: 20})));
  }

  // Row 2: the pumps side by side.
  const pumpTop = top + tankH + 40;
  const pumpY = pumpTop + 44;
  const n = Math.max(1, pumps.length);
  const colW = (W - 2 * PAD) / n;
  const manifoldY = pumpTop;
  const headerY = pumpTop + 200;
  const pumpXs = pumps.map((p, i) => PAD + colW * (i + 0.5));
  if (pumps.length) {
    const left = Math.min(supplyX, ...pumpXs);
    const right = Math.max(supplyX, ...pumpXs);
    parts.push(s('path', {class: 'mm-pipe', d: `M${supplyX},${top + tankH} V${manifoldY} M${left},${manifoldY} H${right}`}));
  }
  pumps.forEach((pump, i) => {
    const x = pumpXs[i];
    const k = byKind(ctx, pump);
    parts.push(s('path', {class: 'mm-pipe', d: `M${x},${manifoldY} V${pumpY - 26} M${x},${pumpY + 26} V${headerY}`}));
    parts.push(valve(x, pumpY + 52));
    const group = duty.get(pump.id);
    shapes.push(s('g', {class: 'mm-equip mm-pump', 'data-equipment': pump.id, 'data-mimic-pump': pump.id,
      'data-run': 'unknown', 'data-duty-group': group || ''},
    s('title', {}, pick(pump.name)),
    s('circle', {class: 'mm-pump-body', cx: x, cy: pumpY, r: 26}),
    s('path', {class: 'mm-impeller', d: `M${x - 12},${pumpY - 14} L${x + 16},${pumpY} L${x - 12},${pumpY + 14} Z`}),
    s('text', {class: 'mm-run', x, y: pumpY + 90, 'text-anchor': 'middle', 'font-size': 20}, t('pump.unknown')),
    label(x, pumpY + 116, pick(pump.name), {size: 20, max: Math.max(8, Math.floor(colW / 11))}),
    value(k.current, x + 34, pumpY - 4, {size: 22, anchor: 'start'}),
    group ? s('text', {class: 'mm-duty', x: x + 34, y: pumpY + 22, 'font-size': 20}, '') : null));
  });

  // Row 3: the header with its pressure, and the pressure tank.
  const headerSensors = headers.map((hd) => byKind(ctx, hd));
  if (pumps.length || headers.length) {
    const left = pumps.length ? Math.min(...pumpXs) : PAD + 40;
    parts.push(s('path', {class: 'mm-pipe mm-pipe-main', d: `M${left},${headerY + 60} H${W - PAD - 8}`}));
    if (pumps.length) parts.push(s('path', {class: 'mm-pipe', d: pumpXs.map((x) => `M${x},${headerY} V${headerY + 60}`).join(' ')}));
    parts.push(s('path', {class: 'mm-arrow', d: `M${W - PAD - 16},${headerY + 50} l14,10 l-14,10 Z`}));
  }
  headers.forEach((hd, i) => {
    const k = headerSensors[i];
    const x = W - PAD - 150 - i * 170;
    shapes.push(s('g', {class: 'mm-equip mm-header', 'data-equipment': hd.id},
      s('title', {}, pick(hd.name)),
      s('rect', {class: 'mm-box mm-gauge', x, y: headerY + 78, width: 150, height: 74, rx: 8}),
      label(x + 75, headerY + 98, pick(hd.name), {size: 20, max: 15}),
      value(k.pressure, x + 75, headerY + 136, {size: 28}),
      value(k.flow, x + 75, headerY + 172, {size: 20}),
      drop(k.leak, x - 24, headerY + 110, ctx)));
  });
  ptanks.forEach((pt, i) => {
    const k = byKind(ctx, pt);
    const x = PAD + 20 + i * 140;
    shapes.push(s('g', {class: 'mm-equip mm-ptank', 'data-equipment': pt.id},
      s('title', {}, pick(pt.name)),
      s('path', {class: 'mm-pipe', d: `M${x + 40},${headerY + 60} V${headerY + 82}`}),
      s('rect', {class: 'mm-box', x: x + 14, y: headerY + 82, width: 52, height: 74, rx: 24}),
      label(x + 40, headerY + 178, pick(pt.name), {size: 20, max: 10}),
      value(k.pressure, x + 40, headerY + 124, {size: 20}),
      drop(k.leak, x + 84, headerY + 112, ctx)));
  });

  // Row 4: the sump with its sewage pump, and the room's own sensors.
  const bottom = headerY + (headers.length || ptanks.length ? 210 : 90);
  let roomX = PAD + 8;
  sumps.forEach((sump) => {
    const k = byKind(ctx, sump);
    const x = roomX;
    shapes.push(s('g', {class: 'mm-equip mm-sump', 'data-equipment': sump.id},
      s('title', {}, pick(sump.name)),
      vessel(x, bottom + 30, 110, 80, k.level, 'sump', ctx),
      label(x + 55, bottom + 20, pick(sump.name), {size: 20, max: 12}),
      value(k.level, x + 55, bottom + 78, {size: 20})));
    roomX += 124;
  });
  sewage.forEach((pump) => {
    const k = byKind(ctx, pump);
    const x = roomX + 30;
    const y = bottom + 70;
    shapes.push(s('g', {class: 'mm-equip mm-pump', 'data-equipment': pump.id, 'data-mimic-pump': pump.id, 'data-run': 'unknown'},
      s('title', {}, pick(pump.name)),
      s('circle', {class: 'mm-pump-body', cx: x, cy: y, r: 22}),
      s('path', {class: 'mm-impeller', d: `M${x - 10},${y - 12} L${x + 14},${y} L${x - 10},${y + 12} Z`}),
      label(x, bottom + 20, pick(pump.name), {size: 20, max: 10}),
      s('text', {class: 'mm-run', x, y: y + 44, 'text-anchor': 'middle', 'font-size': 20}, t('pump.unknown')),
      value(k.current, x + 28, y + 6, {size: 20, anchor: 'start'})));
    roomX += 150;
  });
  const own = roomOwn.map((id) => ({id, kind: ctx.sensors.get(id)?.kind})).filter((x) => x.kind);
  const leaks = own.filter((x) => x.kind === 'leak');
  const temps = own.filter((x) => x.kind === 'temperature' || x.kind === 'humidity');
  let ry = bottom + 36;
  const rx = Math.max(roomX + 10, W - PAD - 200);
  if (leaks.length || temps.length) {
    parts.push(label(rx, bottom + 16, t('board.roomSensors'), {size: 20, anchor: 'start', cls: 'mm-label mm-muted'}));
  }
  for (const leak of leaks) {
    shapes.push(s('g', {}, drop(leak.id, rx + 12, ry + 8, ctx),
      label(rx + 100, ry + 14, pick(ctx.sensors.get(leak.id)?.name) || leak.id, {size: 18, anchor: 'start', max: 12})));
    ry += 34;
  }
  for (const temp of temps) {
    parts.push(label(rx, ry + 14, pick(ctx.sensors.get(temp.id)?.name) || temp.id, {size: 18, anchor: 'start', max: 10}));
    parts.push(value(temp.id, rx + 190, ry + 14, {size: 20, anchor: 'end'}));
    ry += 30;
  }
  const height = Math.max(bottom + 130, ry + 20);
  const svg = s('svg', {class: 'mimic', viewBox: `0 0 ${W} ${height}`, role: 'img', 'data-mimic': room.id,
    'aria-label': t('mimic.label', {room: pick(room.name)})},
  s('title', {}, t('mimic.label', {room: pick(room.name)})), ...parts, ...shapes);

  /** Colour equipment with active alarms, move the levels, show run state and duty. */
  const paint = (alarms, live, dutyOf) => {
    const worst = new Map();
    for (const a of alarms) {
      if (a.state !== 'active') continue;
      const rank = {critical: 4, major: 3, minor: 2, warning: 1}[a.severity] || 0;
      const before = worst.get(a.asset);
      if (!before || rank > before.rank) worst.set(a.asset, {rank, acked: Boolean(a.acknowledged_at)});
    }
    for (const g of svg.querySelectorAll('[data-equipment]')) {
      const w = worst.get(g.dataset.equipment);
      const state = w ? (w.rank >= 3 ? 'alarm' : 'warning') : 'ok';
      if (g.dataset.alarm !== state) g.dataset.alarm = state;
      g.classList.toggle('is-flashing', Boolean(w && w.rank >= 4 && !w.acked));
    }
    for (const fill of svg.querySelectorAll('[data-fill]')) {
      const id = fill.dataset.fill;
      const info = ctx.sensors.get(id);
      const r = id && live.readings.get(id);
      const max = info?.range ? info.range[1] : null;
      const share = r && max ? Math.min(1, Math.max(0, r.value / max)) : 0;
      const hgt = Number(fill.dataset.height) * share;
      fill.setAttribute('y', String(Number(fill.dataset.top) + Number(fill.dataset.height) - hgt));
      fill.setAttribute('height', String(hgt));
    }
    for (const g of svg.querySelectorAll('[data-mimic-pump]')) {
      const pump = ctx.equipment.get(g.dataset.mimicPump);
      const runId = pump.sensors.find((id) => ctx.sensors.get(id)?.kind === 'run_status');
      const r = runId && live.readings.get(runId);
      const run = !r || live.isStale(runId) ? 'unknown' : r.state === 'RUNNING' || r.value >= 1 ? 'running' : 'stopped';
      if (g.dataset.run !== run) {
        g.dataset.run = run;
        g.querySelector('.mm-run').textContent = t(`pump.${run}`);
      }
      const dutyEl = g.querySelector('.mm-duty');
      if (dutyEl) {
        const d = dutyOf.get(pump.id);
        const text = d && d !== 'unknown' ? t(`pump.${d}`) : '';
        if (dutyEl.textContent !== text) dutyEl.textContent = text;
        g.dataset.duty = d || 'unknown';
      }
    }
  };
  return {el: svg, paint};
}

// The operator board (every room at a glance) and the room page (trends, run hours), updated live.

import {get} from './api.js';
import {trendChart} from './chart.js';
import {
  ANALOG_KINDS, alarmTable, chip, digitsFor, errorText, loading, pageHeader, refreshAges, sensorState, stateChip,
  valueText, worstBySensor,
} from './common.js';
import {h, mount} from './dom.js';
import {fmtNum, fmtTime, pick, t} from './i18n.js';
import {live} from './live.js';

const ALARM_REFRESH_MS = 20000;

/** Sensors of a room grouped the way a pump room is read: pumps first, then other equipment, then the room. */
function roomLayout(ctx, room) {
  const pumps = room.equipment.filter((e) => e.type === 'pump');
  const others = room.equipment.filter((e) => e.type !== 'pump');
  const roomSensors = room.sensors.filter((id) => !room.equipment.some((e) => e.sensors.includes(id)));
  return {pumps, others, roomSensors};
}

/** Which pump of a duty group is on duty, from the room's duty-select sensor (1 = the group's first pump). */
function dutyOf(ctx, room) {
  const duty = new Map();
  const selectors = [...ctx.sensors.values()].filter((x) => x.room === room.id && x.kind === 'duty_select').map((x) => x.id);
  room.duty_groups.forEach((group, index) => {
    const selector = selectors[index] ?? (room.duty_groups.length === 1 ? selectors[0] : undefined);
    const reading = selector && live.readings.get(selector);
    group.pumps.forEach((pump, i) => {
      duty.set(pump, reading ? (Math.round(reading.value) === i + 1 ? 'duty' : 'standby') : 'unknown');
    });
  });
  return duty;
}

function sensorRow(ctx, id) {
  const info = ctx.sensors.get(id);
  return h('div', {class: 'sensor', 'data-sensor': id, 'data-state': 'stale'},
    h('span', {class: 'sensor-name'}, info?.name ? pick(info.name) : id),
    h('span', {class: 'sensor-value'}, h('span', {class: 'num'}, '—'), ' ', h('span', {class: 'unit'})),
    h('span', {class: 'sensor-chip'}));
}

function pumpSensor(kind, pump, ctx) {
  return pump.sensors.find((id) => ctx.sensors.get(id)?.kind === kind);
}

function pumpTile(ctx, pump) {
  const field = (kind, label) => {
    const id = pumpSensor(kind, pump, ctx);
    if (!id) return null;
    return h('div', {class: ['pump-field', `pump-${kind}`], 'data-sensor': id, 'data-state': 'stale'},
      h('dt', {}, label), h('dd', {}, h('span', {class: 'num'}, '—'), ' ', h('span', {class: 'unit'})));
  };
  return h('article', {class: 'pump', 'data-pump': pump.id, 'data-run': 'unknown'},
    h('header', {class: 'pump-head'},
      h('h4', {}, pick(pump.name)),
      h('span', {class: 'pump-run', 'data-run-label': ''}, t('pump.unknown')),
      h('span', {class: 'pump-duty', 'data-duty': 'unknown'})),
    h('dl', {class: 'pump-fields'},
      field('switch_position', t('pump.switch')),
      field('current', t('pump.current')),
      field('temperature', t('pump.temp')),
      field('vibration', t('pump.vibration')),
      field('run_hours', t('pump.hours'))));
}

/** Write the newest readings, state colours and pump status into the elements under `root`. */
function paint(ctx, root, alarms) {
  const bySensor = worstBySensor(alarms);
  for (const el of root.querySelectorAll('[data-sensor]')) {
    const id = el.dataset.sensor;
    const info = ctx.sensors.get(id);
    const reading = live.readings.get(id);
    const stale = live.isStale(id);
    const state = sensorState(info || {id}, reading, bySensor, stale);
    const {num, unit} = valueText(info, reading);
    const numEl = el.querySelector('.num');
    if (numEl && numEl.textContent !== num) numEl.textContent = num;
    const unitEl = el.querySelector('.unit');
    if (unitEl && unitEl.textContent !== unit) unitEl.textContent = unit;
    if (el.dataset.state !== state) {
      el.dataset.state = state;
      const chipEl = el.querySelector('.sensor-chip');
      if (chipEl) chipEl.replaceChildren(stateChip(state));
    }
    if (reading) el.dataset.ts = String(reading.ts);
  }
  for (const tile of root.querySelectorAll('[data-pump]')) {
    const pump = ctx.equipment.get(tile.dataset.pump);
    const runId = pumpSensor('run_status', pump, ctx);
    const reading = runId && live.readings.get(runId);
    const run = !reading || live.isStale(runId) ? 'unknown' : reading.state === 'RUNNING' || reading.value >= 1 ? 'running' : 'stopped';
    if (tile.dataset.run !== run) {
      tile.dataset.run = run;
      tile.querySelector('[data-run-label]').textContent = t(`pump.${run}`);
    }
    const room = ctx.roomOf(pump.id);
    const duty = room ? dutyOf(ctx, room).get(pump.id) : undefined;
    const dutyEl = tile.querySelector('.pump-duty');
    const dutyText = duty && duty !== 'unknown' ? t(`pump.${duty}`) : '';
    if (dutyEl.textContent !== dutyText) {
      dutyEl.textContent = dutyText;
      dutyEl.dataset.duty = duty || 'none';
    }
  }
}

function connectionBanner(status) {
  if (status === 'live') return null;
  const text = {connecting: t('live.connecting'), reconnecting: t('live.reconnecting'), stale: t('live.stale'),
    down: t('live.down'), idle: t('live.down')}[status] || t('live.down');
  return h('p', {class: ['conn-banner', `conn-${status}`], role: 'alert'}, text);
}

/** Common life of the live pages: fetch active alarms, listen to the stream, repaint, clean up. */
function liveAlarms(ctx, {room, onAlarms, onTick}) {
  let alarms = [];
  let stopped = false;
  let pending = null;
  const load = async () => {
    try {
      const q = new URLSearchParams({state: 'active', limit: '200'});
      if (room) q.set('room', room);
      const page = await get(`/api/alarms?${q}`);
      if (stopped) return;
      alarms = page.data;
      onAlarms(alarms);
    } catch (err) {
      if (!stopped) onAlarms(alarms, err);
    }
  };
  const soon = () => {
    // The API applies alarm events a moment after the stream announces them: look now and again shortly.
    clearTimeout(pending);
    load();
    pending = setTimeout(load, 1500);
  };
  const offAlarm = live.on('alarm', (event) => { if (!room || event.room === room) soon(); });
  const offStatus = live.on('status', () => onTick(alarms));
  const offReadings = live.on('readings', () => onTick(alarms));
  const every = setInterval(load, ALARM_REFRESH_MS);
  load();
  return {
    get alarms() { return alarms; },
    reload: load,
    stop() { stopped = true; clearTimeout(pending); clearInterval(every); offAlarm(); offStatus(); offReadings(); },
  };
}

async function seedLatest(ctx, rooms) {
  const pages = await Promise.all(rooms.map((r) => get(`/api/rooms/${encodeURIComponent(r.id)}/latest`)));
  for (const page of pages) live.seed(page.data);
}

export async function boardPage(main, ctx) {
  mount(main, pageHeader(t('board.title')), loading());
  live.start();
  try {
    await seedLatest(ctx, ctx.site.rooms);
  } catch (err) {
    mount(main, pageHeader(t('board.title')), h('p', {class: 'error', role: 'alert'}, errorText(err)));
    return () => {};
  }
  const status = h('p', {class: 'live-meta', 'aria-live': 'off'});
  const banner = h('div', {class: 'conn-slot'});
  const alarmBox = h('section', {class: 'panel alarms-panel', 'aria-labelledby': 'alarms-h'},
    h('h2', {id: 'alarms-h'}, t('board.activeAlarms'), ' ', h('span', {class: 'count', 'data-alarm-count': ''}, '0')),
    h('div', {class: 'alarm-slot'}));
  const roomsBox = h('div', {class: 'rooms'});
  for (const room of ctx.site.rooms) {
    const {pumps, others, roomSensors} = roomLayout(ctx, room);
    roomsBox.append(h('section', {class: 'room panel', 'data-room': room.id, 'aria-labelledby': `room-h-${room.id}`},
      h('header', {class: 'room-head'},
        h('h2', {id: `room-h-${room.id}`}, h('a', {href: `#/room/${encodeURIComponent(room.id)}`}, pick(room.name))),
        h('span', {class: 'room-alarms', 'data-room-alarms': room.id})),
      pumps.length ? h('div', {class: 'pumps'}, pumps.map((p) => pumpTile(ctx, p))) : null,
      h('div', {class: 'equipment-list'},
        others.map((e) => h('section', {class: 'equipment', 'data-equipment': e.id},
          h('h3', {}, pick(e.name)),
          e.sensors.filter((id) => !['run_command'].includes(ctx.sensors.get(id)?.kind)).map((id) => sensorRow(ctx, id)))),
        roomSensors.length ? h('section', {class: 'equipment', 'data-equipment': room.id},
          h('h3', {}, t('board.roomSensors')), roomSensors.map((id) => sensorRow(ctx, id))) : null)));
  }
  mount(main, pageHeader(t('board.title'), status), banner, alarmBox, roomsBox);

  let lastStatus = null;
  const tick = (alarms) => {
    paint(ctx, roomsBox, alarms);
    if (live.status !== lastStatus) {
      lastStatus = live.status;
      banner.replaceChildren(connectionBanner(live.status) || '');
      main.dataset.live = live.status;
    }
    const newest = live.lastReadingTs;
    status.textContent = newest ? t('board.updated', {time: fmtTime((newest - live.serverOffset) * 1000, true)}) : '';
  };
  const feed = liveAlarms(ctx, {
    onAlarms: (alarms, err) => {
      const slot = alarmBox.querySelector('.alarm-slot');
      slot.replaceChildren(alarmTable(ctx, alarms, {onChange: () => feed.reload()}),
        err ? h('p', {class: 'error', role: 'alert'}, errorText(err)) : '');
      alarmBox.querySelector('[data-alarm-count]').textContent = fmtNum(alarms.length, 0);
      for (const room of ctx.site.rooms) {
        const n = alarms.filter((a) => a.room === room.id).length;
        const el = roomsBox.querySelector(`[data-room-alarms="${CSS.escape(room.id)}"]`);
        el.replaceChildren(n ? chip('sev', 'critical', t('board.roomAlarmCount', {n})) : chip('st', 'ok', t('board.roomOk')));
      }
      tick(alarms);
    },
    onTick: tick,
  });
  const ages = setInterval(() => refreshAges(alarmBox), 15000);
  tick([]);
  return () => { feed.stop(); clearInterval(ages); };
}

const RANGES = [
  {key: '1h', seconds: 3600, live: true},
  {key: '6h', seconds: 6 * 3600},
  {key: '24h', seconds: 86400},
  {key: '7d', seconds: 7 * 86400},
  {key: '30d', seconds: 30 * 86400},
];
const POINTS = 240; // per chart: plenty for a 640 px wide line

export async function roomPage(main, ctx, roomId) {
  const room = ctx.rooms.get(roomId);
  if (!room) {
    mount(main, pageHeader(t('room.notFound')), h('p', {}, h('a', {href: '#/board'}, t('nav.board'))));
    return () => {};
  }
  mount(main, pageHeader(pick(room.name)), loading());
  live.start();
  try {
    await seedLatest(ctx, [room]);
  } catch (err) {
    mount(main, pageHeader(pick(room.name)), h('p', {class: 'error', role: 'alert'}, errorText(err)));
    return () => {};
  }
  const {pumps} = roomLayout(ctx, room);
  const analog = [...ctx.sensors.values()].filter((x) => x.room === room.id && ANALOG_KINDS.includes(x.kind)).map((x) => x.id);
  let range = RANGES[0];
  const series = new Map(); // sensor -> points
  const dirty = new Set();
  let loadToken = 0;

  const rangeButtons = h('div', {class: 'segmented', role: 'group', 'aria-label': t('room.range')},
    RANGES.map((r) => h('button', {type: 'button', class: 'btn', 'data-range': r.key, 'aria-pressed': String(r === range)},
      t(`room.range.${r.key}`))));
  const banner = h('div', {class: 'conn-slot'});
  const hours = h('section', {class: 'panel', 'aria-labelledby': 'hours-h'},
    h('h2', {id: 'hours-h'}, t('room.pumps')),
    h('div', {class: 'pumps'}, pumps.map((p) => pumpTile(ctx, p))));
  const charts = h('div', {class: 'charts'});
  const cards = new Map();
  for (const id of analog) {
    const info = ctx.sensors.get(id);
    const slot = h('div', {class: 'chart-slot'});
    const card = h('figure', {class: 'chart-card', 'data-chart': id},
      h('figcaption', {}, h('span', {class: 'chart-title'}, pick(info.name) || id),
        h('span', {class: 'sensor chart-value', 'data-sensor': id, 'data-state': 'stale'},
          h('span', {class: 'num'}, '—'), ' ', h('span', {class: 'unit'}), ' ', h('span', {class: 'sensor-chip'}))),
      slot);
    cards.set(id, slot);
    charts.append(card);
  }
  const alarmsBox = h('section', {class: 'panel', 'aria-labelledby': 'room-alarms-h'},
    h('h2', {id: 'room-alarms-h'}, t('board.activeAlarms')), h('div', {class: 'alarm-slot'}));
  mount(main,
    pageHeader(pick(room.name), h('a', {href: '#/board', class: 'back'}, t('room.back'))),
    banner, alarmsBox, hours,
    h('section', {class: 'panel', 'aria-labelledby': 'trends-h'},
      h('div', {class: 'section-head'}, h('h2', {id: 'trends-h'}, t('room.trends')), rangeButtons),
      h('p', {class: 'muted range-note'}),
      charts));

  const draw = (id) => {
    const info = ctx.sensors.get(id);
    const end = live.serverNow();
    cards.get(id).replaceChildren(trendChart({points: series.get(id) || [], start: end - range.seconds, end,
      unit: info.unit, digits: digitsFor(info.kind), title: pick(info.name) || id}));
  };
  const loadHistory = async () => {
    const token = ++loadToken;
    const end = live.serverNow();
    const start = end - range.seconds;
    const step = Math.max(1, Math.ceil(range.seconds / POINTS));
    main.querySelector('.range-note').textContent = t('room.step', {step: fmtNum(step, 0)});
    await Promise.all(analog.map(async (id) => {
      try {
        const page = await get(`/api/sensors/${encodeURIComponent(id)}/history?start=${start}&end=${end + 1}&step=${step}`);
        if (token !== loadToken) return;
        series.set(id, page.data);
      } catch {
        if (token !== loadToken) return;
        series.set(id, []);
      }
      draw(id);
    }));
    charts.dataset.loaded = range.key;
  };
  rangeButtons.addEventListener('click', (event) => {
    const button = event.target.closest('[data-range]');
    if (!button) return;
    range = RANGES.find((r) => r.key === button.dataset.range);
    for (const b of rangeButtons.querySelectorAll('[data-range]')) b.setAttribute('aria-pressed', String(b === button));
    loadHistory();
  });
  const offReadings = live.on('readings', (batch) => {
    if (!range.live) return;
    for (const r of batch) {
      if (!series.has(r.sensor) || r.stale) continue;
      const points = series.get(r.sensor);
      points.push({ts: r.ts, mean: r.value, min: r.value, max: r.value, count: 1});
      const cut = r.ts - range.seconds;
      while (points.length && points[0].ts < cut) points.shift();
      dirty.add(r.sensor);
    }
  });
  const redraw = setInterval(() => {
    for (const id of dirty) draw(id);
    dirty.clear();
  }, 2000);
  let lastStatus = null;
  const tick = (alarms) => {
    paint(ctx, main, alarms);
    if (live.status !== lastStatus) {
      lastStatus = live.status;
      banner.replaceChildren(connectionBanner(live.status) || '');
      main.dataset.live = live.status;
    }
  };
  const feed = liveAlarms(ctx, {
    room: room.id,
    onAlarms: (alarms, err) => {
      alarmsBox.querySelector('.alarm-slot').replaceChildren(
        alarmTable(ctx, alarms, {showRoom: false, onChange: () => feed.reload()}),
        err ? h('p', {class: 'error', role: 'alert'}, errorText(err)) : '');
      tick(alarms);
    },
    onTick: tick,
  });
  tick([]);
  loadHistory();
  return () => { feed.stop(); offReadings(); clearInterval(redraw); };
}


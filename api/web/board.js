// The operator board (every room at a glance: the pump-room mimic, or the cards) and the room page
// (trends, run hours), updated live; the alarm console on both.

import {get} from './api.js';
import {alarmConsole} from './alarmconsole.js';
import * as chartKit from './chart.js';
import {
  ANALOG_KINDS, SEVERITY_RANK, alarmTable, digitsFor, errorText, limitCrossed, loading, pageHeader, refreshAges,
  sensorState, severityChip, stateChip, valueText, worstBySensor,
} from './common.js';
import {h, mount} from './dom.js';
import {estateField} from './estatepick.js';
import {fmtNum, fmtRel, fmtTime, pick, t} from './i18n.js';
import {live} from './live.js';
import {roomMimic} from './mimic.js';

const VIEW_KEY = 'pumpwatch.boardView';

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
    h('span', {class: 'sensor-chip'}),
    h('span', {class: 'last-seen', hidden: true}));
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
      h('h3', {class: 'pump-name'}, pick(pump.name)),
      h('span', {class: 'pump-run', 'data-run-label': ''}, t('pump.unknown')),
      h('span', {class: 'pump-duty', 'data-duty': 'unknown'})),
    h('dl', {class: 'pump-fields'},
      field('switch_position', t('pump.switch')),
      field('current', t('pump.current')),
      field('temperature', t('pump.temp')),
      field('vibration', t('pump.vibration')),
      field('run_hours', t('pump.hours'))));
}

function chipFor(kind, state) {
  return h('span', {class: ['chip', `st-${state}`], 'data-limit': ''}, t('sensor.limit'));
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
    // Beyond a threshold with no alarm yet: the rules are still waiting out its delay.
    const pending = state !== 'stale' && !bySensor.get(id) && limitCrossed(info, reading) ? 'true' : 'false';
    const {num, unit} = valueText(info, reading);
    const numEl = el.querySelector('.num');
    if (numEl && numEl.textContent !== num) numEl.textContent = num;
    const unitEl = el.querySelector('.unit');
    if (unitEl && unitEl.textContent !== unit) unitEl.textContent = unit;
    if (el.dataset.state !== state || el.dataset.pending !== pending) {
      el.dataset.state = state;
      el.dataset.pending = pending;
      const chipEl = el.querySelector('.sensor-chip');
      if (chipEl) chipEl.replaceChildren(pending === 'true' ? chipFor('limit', state) : stateChip(state));
    }
    if (reading) el.dataset.ts = String(reading.ts);
    const seen = el.querySelector('.last-seen');
    const seenText = state === 'stale' && reading ? t('sensor.lastSeen', {time: fmtTime((reading.ts - live.serverOffset) * 1000, true),
      rel: fmtRel((reading.ts - live.serverOffset) * 1000)}) : '';
    if (seen && seen.textContent !== seenText) {
      seen.textContent = seenText;
      seen.hidden = !seenText;
    }
    if (el instanceof SVGElement) {
      const title = seenText || (pending === 'true' ? t('sensor.limit') : '');
      let tip = el.querySelector('title');
      if (title && !tip) { tip = document.createElementNS('http://www.w3.org/2000/svg', 'title'); el.prepend(tip); }
      if (tip && tip.textContent !== title) tip.textContent = title;
    }
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
      if (ctx.siteEstate) q.set('estate', ctx.siteEstate);
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

/** `?estate=` of the estate the pages of one estate show ('' with one estate in scope). */
function onEstate(ctx) {
  return ctx.siteEstate ? `?estate=${encodeURIComponent(ctx.siteEstate)}` : '';
}

/** A room's page in the estate shown. */
function roomHref(ctx, room) {
  return `#/room/${encodeURIComponent(room.id)}${onEstate(ctx)}`;
}

async function seedLatest(ctx, rooms) {
  const pages = await Promise.all(rooms.map((r) => get(`/api/rooms/${encodeURIComponent(r.id)}/latest${onEstate(ctx)}`)));
  for (const page of pages) live.seed(page.data);
}

function savedView() {
  try { return localStorage.getItem(VIEW_KEY) === 'cards' ? 'cards' : 'mimic'; } catch { return 'mimic'; }
}

/** The cards view of a room: pump tiles and the sensors of each piece of equipment. */
function roomCards(ctx, room) {
  const {pumps, others, roomSensors} = roomLayout(ctx, room);
  return h('div', {class: 'room-cards'},
    pumps.length ? h('div', {class: 'pumps'}, pumps.map((p) => pumpTile(ctx, p))) : null,
    h('div', {class: 'equipment-list'},
      others.map((e) => h('section', {class: 'equipment', 'data-equipment': e.id},
        h('h3', {}, pick(e.name)),
        e.sensors.filter((id) => !['run_command'].includes(ctx.sensors.get(id)?.kind)).map((id) => sensorRow(ctx, id)))),
      roomSensors.length ? h('section', {class: 'equipment', 'data-equipment': room.id},
        h('h3', {}, t('board.roomSensors')), roomSensors.map((id) => sensorRow(ctx, id))) : null));
}

/**
 * A room's state in words for its header: its active alarms (worst first, the first two named) and sensors
 * whose values are out of date. Returns {level: ok|warning|alarm|stale, el}.
 */
function roomStatus(ctx, room, alarms) {
  const mine = alarms.filter((a) => a.room === room.id && a.state === 'active')
    .sort((a, b) => SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity]);
  const sensors = [...ctx.sensors.values()].filter((x) => x.room === room.id && x.kind !== 'run_command');
  const stale = sensors.filter((x) => live.readings.has(x.id) && live.isStale(x.id)).length;
  if (!mine.length) {
    const level = stale ? 'stale' : 'ok';
    return {level, el: h('span', {class: ['room-status', `room-status-${level}`]},
      stale ? t('board.roomStale', {n: stale}) : t('board.roomOk'))};
  }
  const worst = mine[0].severity;
  const level = SEVERITY_RANK[worst] >= SEVERITY_RANK.major ? 'alarm' : 'warning';
  const unacked = mine.filter((a) => !a.acknowledged_at).length;
  return {level, el: h('div', {class: ['room-banner', `room-banner-${level}`], role: 'status'},
    h('strong', {class: 'room-banner-count'}, '⚠ ', t('board.roomAlarmCount', {n: mine.length})),
    unacked ? h('span', {class: 'room-banner-unacked'}, t('board.roomUnacked', {n: unacked})) : null,
    h('ul', {class: 'room-banner-list'}, mine.slice(0, 2).map((a) => h('li', {},
      severityChip(a.severity), ' ', h('a', {href: `#/alarm/${a.id}`}, pick(a, 'message'))))),
    mine.length > 2 ? h('span', {class: 'muted'}, t('board.roomMore', {n: mine.length - 2})) : null,
    stale ? h('span', {class: 'room-banner-stale'}, t('board.roomStale', {n: stale})) : null)};
}

export async function boardPage(main, ctx, queryText) {
  mount(main, pageHeader(t('board.title')), loading());
  await ctx.useEstate(new URLSearchParams(queryText || '').get('estate'));
  live.start(ctx.siteEstate);
  try {
    await seedLatest(ctx, ctx.site.rooms);
  } catch (err) {
    mount(main, pageHeader(t('board.title')), h('p', {class: 'error', role: 'alert'}, errorText(err)));
    return () => {};
  }
  const desk = alarmConsole();
  let view = savedView();
  const status = h('p', {class: 'live-meta', 'aria-live': 'off'});
  const banner = h('div', {class: 'conn-slot'});
  const alarmBox = h('section', {class: 'panel alarms-panel', 'aria-labelledby': 'alarms-h', 'data-count': '0'},
    h('h2', {id: 'alarms-h'}, t('board.activeAlarms'), ' ', h('span', {class: 'count', 'data-alarm-count': ''}, '0')),
    h('div', {class: 'alarm-slot'}));
  const viewButtons = h('div', {class: 'segmented view-switch', role: 'group', 'aria-label': t('board.view')},
    ['mimic', 'cards'].map((v) => h('button', {type: 'button', class: 'btn', 'data-view': v, 'aria-pressed': String(v === view)},
      t(`board.view.${v}`))));
  const roomsBox = h('div', {class: 'rooms', 'data-board-view': view});
  const mimics = new Map();
  let alarmsNow = [];
  const build = () => {
    mimics.clear();
    roomsBox.dataset.boardView = view;
    roomsBox.replaceChildren(...ctx.site.rooms.map((room) => {
      let body;
      if (view === 'mimic') {
        const mimic = roomMimic(ctx, room);
        mimics.set(room.id, mimic);
        body = h('div', {class: 'mimic-wrap'}, mimic.el);
      } else {
        body = roomCards(ctx, room);
      }
      return h('section', {class: 'room panel', 'data-room': room.id, 'data-trouble': 'ok', 'aria-labelledby': `room-h-${room.id}`},
        h('header', {class: 'room-head'},
          h('h2', {id: `room-h-${room.id}`}, h('a', {href: roomHref(ctx, room)}, pick(room.name))),
          h('a', {href: roomHref(ctx, room), class: 'room-trends-link'}, t('board.trends'))),
        h('div', {class: 'room-alarms', 'data-room-alarms': room.id}),
        body);
    }));
  };
  build();
  // Several estates in scope: the board shows one, chosen here (kept in the address and on this device).
  const picker = estateField(ctx, ctx.siteEstate, (id) => { location.hash = `#/board?estate=${encodeURIComponent(id)}`; },
    {id: 'board-estate', all: false});
  mount(main, pageHeader(t('board.title'), status, h('span', {class: 'head-tools'}, picker, viewButtons, desk.button)),
    banner, alarmBox, roomsBox);

  let lastStatus = null;
  const paintRooms = (alarms) => {
    for (const room of ctx.site.rooms) {
      const section = roomsBox.querySelector(`[data-room="${CSS.escape(room.id)}"]`);
      const {level, el} = roomStatus(ctx, room, alarms);
      if (section.dataset.trouble !== level || section.dataset.sig !== el.textContent) {
        section.dataset.trouble = level;
        section.dataset.sig = el.textContent;
        section.querySelector('[data-room-alarms]').replaceChildren(el);
      }
      section.classList.toggle('is-flashing', alarms.some((a) => a.room === room.id && a.state === 'active'
        && a.severity === 'critical' && !a.acknowledged_at));
      const mimic = mimics.get(room.id);
      if (mimic) mimic.paint(alarms.filter((a) => a.room === room.id), live, dutyOf(ctx, room));
    }
  };
  const tick = (alarms) => {
    paint(ctx, roomsBox, alarms);
    paintRooms(alarms);
    if (live.status !== lastStatus) {
      lastStatus = live.status;
      banner.replaceChildren(connectionBanner(live.status) || '');
      main.dataset.live = live.status;
    }
    const newest = live.lastReadingTs;
    status.textContent = newest ? t('board.updated', {time: fmtTime((newest - live.serverOffset) * 1000, true)}) : '';
  };
  viewButtons.addEventListener('click', (event) => {
    const button = event.target.closest('[data-view]');
    if (!button || button.dataset.view === view) return;
    view = button.dataset.view;
    try { localStorage.setItem(VIEW_KEY, view); } catch { /* private mode: for this page only */ }
    for (const b of viewButtons.querySelectorAll('[data-view]')) b.setAttribute('aria-pressed', String(b === button));
    build();
    tick(alarmsNow);
  });
  const feed = liveAlarms(ctx, {
    onAlarms: (alarms, err) => {
      alarmsNow = alarms;
      const slot = alarmBox.querySelector('.alarm-slot');
      slot.replaceChildren(alarmTable(ctx, alarms, {onChange: () => feed.reload()}),
        err ? h('p', {class: 'error', role: 'alert'}, errorText(err)) : '');
      alarmBox.querySelector('[data-alarm-count]').textContent = fmtNum(alarms.length, 0);
      alarmBox.dataset.count = String(alarms.length);
      const critical = alarms.filter((a) => a.severity === 'critical' && !a.acknowledged_at);
      for (const row of slot.querySelectorAll('tr[data-alarm-id]')) {
        row.classList.toggle('is-flashing', critical.some((a) => String(a.id) === row.dataset.alarmId));
      }
      desk.update(alarms);
      tick(alarms);
    },
    onTick: tick,
  });
  const ages = setInterval(() => refreshAges(alarmBox), 15000);
  tick([]);
  return () => { feed.stop(); clearInterval(ages); desk.stop(); };
}

export async function roomPage(main, ctx, roomId, queryText) {
  await ctx.useEstate(new URLSearchParams(queryText || '').get('estate'));
  const room = ctx.rooms.get(roomId);
  if (!room) {
    mount(main, pageHeader(t('room.notFound')), h('p', {}, h('a', {href: '#/board'}, t('nav.board'))));
    return () => {};
  }
  mount(main, pageHeader(pick(room.name)), loading());
  live.start(ctx.siteEstate);
  try {
    await seedLatest(ctx, [room]);
  } catch (err) {
    mount(main, pageHeader(pick(room.name)), h('p', {class: 'error', role: 'alert'}, errorText(err)));
    return () => {};
  }
  const desk = alarmConsole();
  const {pumps} = roomLayout(ctx, room);
  const banner = h('div', {class: 'conn-slot'});
  const mimic = roomMimic(ctx, room);
  const hours = h('section', {class: 'panel', 'aria-labelledby': 'hours-h'},
    h('h2', {id: 'hours-h'}, t('room.pumps')),
    h('div', {class: 'pumps'}, pumps.map((p) => pumpTile(ctx, p))));
  const trends = chartKit.trendPanel(ctx, room, () => live.serverNow());
  const alarmsBox = h('section', {class: 'panel alarms-panel', 'aria-labelledby': 'room-alarms-h', 'data-count': '0'},
    h('h2', {id: 'room-alarms-h'}, t('board.activeAlarms')), h('div', {class: 'alarm-slot'}));
  const statusBox = h('div', {class: 'room-alarms', 'data-room-alarms': room.id});
  const section = h('section', {class: 'room panel room-mimic', 'data-room': room.id, 'data-trouble': 'ok',
    'aria-label': t('mimic.label', {room: pick(room.name)})}, statusBox, h('div', {class: 'mimic-wrap'}, mimic.el));
  mount(main,
    pageHeader(pick(room.name), h('span', {class: 'head-tools'}, desk.button), h('a', {href: `#/board${onEstate(ctx)}`, class: 'back'}, t('room.back'))),
    banner, alarmsBox, section, trends.el, hours);
  const offReadings = live.on('readings', (batch) => trends.feed(batch));
  let lastStatus = null;
  const tick = (alarms) => {
    paint(ctx, main, alarms);
    const {level, el} = roomStatus(ctx, room, alarms);
    if (section.dataset.trouble !== level || section.dataset.sig !== el.textContent) {
      section.dataset.trouble = level;
      section.dataset.sig = el.textContent;
      statusBox.replaceChildren(el);
    }
    mimic.paint(alarms, live, dutyOf(ctx, room));
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
      alarmsBox.dataset.count = String(alarms.length);
      desk.update(alarms);
      tick(alarms);
    },
    onTick: tick,
  });
  tick([]);
  trends.load();
  return () => { feed.stop(); offReadings(); trends.stop(); desk.stop(); };
}

// The monitoring centre (监控中心): every estate in the user's scope as a tile with its number and colour,
// most urgent first, filtered by region and group, kept current by the overview's live stream
// (/api/live?view=overview: the changed estates only). An estate opens its rooms with the same counts; a
// room its sensors with their newest readings (its own live subscription, /api/live?estate=E&room=R); a
// sensor its chart. The colour is always written too: red 紧急 / amber 注意 / green 正常.

import {get} from './api.js';
import {trendChart} from './chart.js';
import {errorText, loading, pageHeader, valueText} from './common.js';
import {announce, h, mount} from './dom.js';
import {fmtDateTime, fmtNum, pick, t} from './i18n.js';

const COUNTS = ['critical', 'major', 'offline', 'overdue', 'minor'];
const CHART_HOURS = 6;

/** The overview's order (maintenance/overview.py): critical, major, offline, overdue, minor, then id. */
function urgency(a, b) {
  for (const key of COUNTS) {
    if (a.counts[key] !== b.counts[key]) return b.counts[key] - a.counts[key];
  }
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

const enc = encodeURIComponent;

function colourChip(colour) {
  return h('span', {class: ['chip', `centre-chip-${colour}`], 'data-colour': colour}, t(`centre.colour.${colour}`));
}

function countsLine(counts) {
  const parts = COUNTS.filter((key) => counts[key]).map((key) => t(`centre.count.${key}`, {n: fmtNum(counts[key], 0)}));
  return h('span', {class: 'centre-counts'}, parts.length ? parts.join(' · ') : t('centre.allWell'));
}

/** A tile: the place's name, its number and colour in words, what the number is made of. */
function tile(place, href, kind) {
  return h('li', {},
    h('a', {href, class: ['centre-tile', `centre-${place.colour}`], [`data-${kind}`]: place.id, 'data-colour': place.colour,
      'data-attention': place.attention},
    h('span', {class: 'centre-name'}, pick(place.name) || place.id),
    h('span', {class: 'centre-line'},
      h('span', {class: 'centre-number', 'aria-label': t('centre.attention', {n: place.attention})}, fmtNum(place.attention, 0)),
      colourChip(place.colour)),
    countsLine(place.counts)));
}

/** Follow a live stream's event until `close()`: the browser reconnects by itself. `main` carries
 * data-live="open" while the stream is connected (what a test waits for before it publishes). */
function follow(path, event, onData, main) {
  const source = new EventSource(path, {withCredentials: true});
  if (main) {
    source.addEventListener('open', () => { main.dataset.live = 'open'; });
    source.addEventListener('error', () => { main.dataset.live = 'closed'; });
  }
  source.addEventListener(event, (message) => {
    let data;
    try { data = JSON.parse(message.data); } catch { return; }
    onData(data);
  });
  return () => source.close();
}

function filterSelect(id, label, values, chosen, onChange) {
  const control = h('select', {id, name: id},
    h('option', {value: ''}, t('centre.all')),
    values.map((v) => h('option', {value: v, selected: v === chosen}, v)));
  control.addEventListener('change', () => onChange(control.value));
  return h('div', {class: 'field'}, h('label', {for: id}, label), control);
}

function overviewQuery(params) {
  const q = new URLSearchParams();
  for (const key of ['region', 'group']) if (params.get(key)) q.set(key, params.get(key));
  return q.toString();
}

/** #/centre?region=&group= : every estate in scope. */
export async function centrePage(main, ctx, queryText) {
  const params = new URLSearchParams(queryText || '');
  mount(main, pageHeader(t('centre.title')), loading());
  const filters = overviewQuery(params);
  let body;
  try {
    body = await get(`/api/overview${filters ? `?${filters}` : ''}`);
  } catch (err) {
    mount(main, pageHeader(t('centre.title')), h('p', {class: 'error', role: 'alert'}, errorText(err)));
    return () => {};
  }
  const estates = new Map(body.data.map((e) => [e.id, e]));
  const setFilter = (key, value) => {
    const next = new URLSearchParams(overviewQuery(params));
    if (value) next.set(key, value); else next.delete(key);
    location.hash = `#/centre${next.toString() ? `?${next}` : ''}`;
  };
  const totals = h('p', {class: 'centre-totals', role: 'status', id: 'centre-totals'});
  const asOf = h('p', {class: 'muted', id: 'centre-asof'});
  const list = h('ul', {class: 'centre-tiles', id: 'centre-estates', 'aria-label': t('centre.estates')});
  const draw = (at) => {
    const shown = [...estates.values()].sort(urgency);
    const focused = document.activeElement?.dataset?.estate;
    list.replaceChildren(...shown.map((e) => tile(e, `#/centre/${enc(e.id)}`, 'estate')));
    if (focused) list.querySelector(`[data-estate="${CSS.escape(focused)}"]`)?.focus();
    const count = (colour) => shown.filter((e) => e.colour === colour).length;
    totals.textContent = t('centre.totals', {n: shown.length, red: count('red'), amber: count('amber'), green: count('green')});
    asOf.textContent = t('centre.asOf', {time: fmtDateTime(at * 1000, true)});
    list.dataset.count = String(shown.length);
  };
  mount(main, pageHeader(t('centre.title')),
    h('div', {class: 'filters centre-filters'},
      filterSelect('centre-region', t('centre.region'), body.regions, params.get('region') || '', (v) => setFilter('region', v)),
      filterSelect('centre-group', t('centre.group'), body.groups, params.get('group') || '', (v) => setFilter('group', v))),
    totals, asOf,
    body.count ? list : h('p', {class: 'muted', id: 'centre-none'}, t('centre.none')),
    h('p', {class: 'muted centre-rule'}, t('centre.rule')));
  draw(body.at);
  return follow(`/api/live?view=overview${filters ? `&${filters}` : ''}`, 'overview', (change) => {
    for (const id of change.removed) estates.delete(id);
    for (const estate of change.changed) {
      const before = estates.get(estate.id);
      if (estate.colour === 'red' && before && before.colour !== 'red') {
        announce(t('centre.turnedRed', {name: pick(estate.name)}));
      }
      estates.set(estate.id, estate);
    }
    draw(change.at);
  });
}

/** #/centre/<estate> : one estate's rooms. */
export async function centreEstatePage(main, ctx, estateId) {
  const estate = decodeURIComponent(estateId);
  mount(main, pageHeader(t('centre.title')), loading());
  let found;
  try {
    found = (await get('/api/overview')).data.find((e) => e.id === estate);
  } catch (err) {
    mount(main, pageHeader(t('centre.title')), h('p', {class: 'error', role: 'alert'}, errorText(err)));
    return () => {};
  }
  if (!found) {
    mount(main, pageHeader(t('centre.noEstate')), h('p', {}, h('a', {href: '#/centre'}, t('centre.back'))));
    return () => {};
  }
  const summary = h('div', {class: 'centre-summary', id: 'centre-estate-summary'});
  const list = h('ul', {class: 'centre-tiles', id: 'centre-rooms', 'aria-label': t('centre.rooms')});
  const draw = (place) => {
    summary.replaceChildren(h('span', {class: 'centre-number'}, fmtNum(place.attention, 0)), colourChip(place.colour),
      countsLine(place.counts), place.region ? h('span', {class: 'muted'}, t('centre.where', {region: place.region, group: place.group || '—'})) : '');
    list.replaceChildren(...place.rooms.map((r) => tile(r, `#/centre/${enc(estate)}/${enc(r.id)}`, 'room')));
  };
  mount(main, pageHeader(pick(found.name) || estate, h('a', {href: '#/centre', class: 'back'}, t('centre.back'))),
    summary, list);
  draw(found);
  return follow('/api/live?view=overview', 'overview', (change) => {
    const mine = change.changed.find((e) => e.id === estate);
    if (mine) draw(mine);
  });
}

/** #/centre/<estate>/<room>?sensor= : a room's sensors and newest readings, and one sensor's chart. */
export async function centreRoomPage(main, ctx, estateId, roomId, queryText) {
  const estate = decodeURIComponent(estateId);
  const room = decodeURIComponent(roomId);
  const chosen = new URLSearchParams(queryText || '').get('sensor');
  const here = `estate=${enc(estate)}`;
  mount(main, pageHeader(room), loading());
  let sensors; let latest; let site;
  try {
    [sensors, latest, site] = await Promise.all([get(`/api/sensors?${here}&room=${enc(room)}`),
      get(`/api/rooms/${enc(room)}/latest?${here}`), get(`/api/site?${here}`)]);
  } catch (err) {
    mount(main, pageHeader(room), h('p', {class: 'error', role: 'alert'}, errorText(err)),
      h('p', {}, h('a', {href: `#/centre/${enc(estate)}`}, t('centre.backEstate'))));
    return () => {};
  }
  const place = site.rooms.find((r) => r.id === room);
  const title = `${pick(site.name)} · ${place ? pick(place.name) : room}`;
  const readings = new Map(latest.data.map((r) => [r.sensor, r]));
  const cells = new Map();
  const rows = sensors.data.map((info) => {
    const value = h('td', {class: 'num', 'data-value': info.id});
    const at = h('td', {});
    cells.set(info.id, {info, value, at});
    const href = `#/centre/${enc(estate)}/${enc(room)}?sensor=${enc(info.id)}`;
    return h('tr', {'data-sensor': info.id},
      h('th', {scope: 'row'}, h('a', {href, 'aria-current': info.id === chosen ? 'true' : undefined}, pick(info.name) || info.id)),
      value, at);
  });
  const paint = (id) => {
    const cell = cells.get(id);
    const reading = readings.get(id);
    if (!cell) return;
    const {num, unit} = valueText(cell.info, reading);
    cell.value.textContent = unit ? `${num} ${unit}` : num;
    cell.value.dataset.stale = String(!reading || Boolean(reading.stale));
    cell.at.textContent = reading ? `${fmtDateTime(reading.ts * 1000, true)}${reading.stale ? ` · ${t('sensor.stale')}` : ''}` : '—';
  };
  cells.forEach((_, id) => paint(id));
  const table = h('table', {class: 'table', id: 'centre-sensors'},
    h('caption', {class: 'visually-hidden'}, t('centre.sensors')),
    h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, t('centre.sensor')), h('th', {scope: 'col'}, t('centre.value')),
      h('th', {scope: 'col'}, t('centre.time')))),
    h('tbody', {}, rows));
  const chart = h('section', {class: 'panel', id: 'centre-chart', 'aria-labelledby': 'centre-chart-h', hidden: !chosen});
  const mimic = h('a', {href: `#/room/${enc(room)}?estate=${enc(estate)}`, class: 'btn', id: 'centre-mimic'}, t('centre.mimic'));
  mount(main, pageHeader(title, h('a', {href: `#/centre/${enc(estate)}`, class: 'back'}, t('centre.backEstate'))),
    mimic ? h('p', {}, mimic) : null, chart, h('section', {class: 'panel'}, table));
  if (chosen) drawChart(chart, estate, cells.get(chosen)?.info, chosen);
  return follow(`/api/live?${here}&room=${enc(room)}`, 'readings', (batch) => {
    for (const reading of batch) {
      readings.set(reading.sensor, reading);
      paint(reading.sensor);
    }
  }, main);
}

async function drawChart(box, estate, info, sensor) {
  const name = info ? pick(info.name) || sensor : sensor;
  mount(box, h('h2', {id: 'centre-chart-h'}, t('centre.chart', {name, hours: CHART_HOURS})), loading());
  const end = Math.ceil(Date.now() / 1000);
  const start = end - CHART_HOURS * 3600;
  try {
    const history = await get(`/api/sensors/${enc(sensor)}/history?estate=${enc(estate)}&start=${start}&end=${end}&step=120`);
    mount(box, h('h2', {id: 'centre-chart-h'}, t('centre.chart', {name, hours: CHART_HOURS})),
      history.count ? trendChart({points: history.data, start, end, unit: info?.unit || '', title: name,
        thresholds: info?.thresholds || [], width: Math.min(960, box.clientWidth || 640)})
        : h('p', {class: 'muted'}, t('centre.noHistory')));
  } catch (err) {
    box.append(h('p', {class: 'error', role: 'alert'}, errorText(err)));
  }
}

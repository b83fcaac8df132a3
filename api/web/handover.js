// Shift handover (交接班): write one from the server's draft (open alarms and tasks, the shift's alarms,
// abnormal readings taken from the active alarms, keys and tools as the last handover of the room left
// them), accept it with a signature or dispute it, and search the history.

import {get, post, request} from './api.js';
import {equipmentName, loading, pageHeader, personName, priorityChip, roomName, sensorInfo, severityChip, taskStateChip} from './common.js';
import {announce, h, mount, toast} from './dom.js';
import {
  aside, colon, errorLine, field, joined, peopleOptions, period, problemText, requestChip, roomOptions, select, uid, when,
  whyNot,
} from './forms.js';
import {fmtNum, pick, t} from './i18n.js';
import {signaturePad} from './media.js';
import {fromLocalInput, toLocalInput} from './sitetime.js';

const SHIFT_ROLES = ['operator', 'technician'];
const ITEM_STATES = ['present', 'missing', 'lent', 'damaged'];
const DEFAULT_ITEMS = [['handover.item.roomKey', 1], ['handover.item.cabinetKey', 1], ['handover.item.torch', 1],
  ['handover.item.multimeter', 1]];
const PAGE = 20;

function sensorLabel(ctx, id, estate) {
  const info = sensorInfo(ctx, id, estate);
  return info && info.name ? aside(pick(info.name), roomName(ctx, info.room, estate)) : id;
}

function carried(ctx, row) {
  const alarms = (list, key) => h('section', {class: 'carried', 'data-carried': key},
    h('h3', {}, t(`handover.${key}`), ' ', h('span', {class: 'count'}, fmtNum(list.length, 0))),
    list.length ? h('ul', {class: 'plain-list'}, list.map((a) => h('li', {},
      severityChip(a.severity), ' ', pick(a.message), ' · ', equipmentName(ctx, a.asset, row.estate), ' · ', when(a.started_at, true),
      a.state && a.state !== 'active' ? h('span', {class: 'muted'}, ` · ${t('alarm.cleared')}`) : '',
      a.acknowledged === false ? h('span', {class: 'unacked'}, ` · ${t('alarm.unacked')}`) : '')))
      : h('p', {class: 'empty'}, t('handover.noneCarried')));
  return [
    alarms(row.open_alarms || [], 'openAlarms'),
    h('section', {class: 'carried', 'data-carried': 'openTasks'},
      h('h3', {}, t('handover.openTasks'), ' ', h('span', {class: 'count'}, fmtNum((row.open_tasks || []).length, 0))),
      (row.open_tasks || []).length ? h('ul', {class: 'plain-list'}, row.open_tasks.map((task) => h('li', {},
        priorityChip(task.priority), ' ', h('a', {href: `#/task/${task.id}`}, pick(task.title)), ' ', taskStateChip(task.state),
        task.due_at ? h('span', {class: 'muted'}, ` · ${t('handover.due', {time: when(task.due_at, true)})}`) : '',
        h('span', {class: 'muted'}, ` · ${joined((task.assignees || []).map((id) => personName(ctx, id))) || t('task.unassigned')}`))))
        : h('p', {class: 'empty'}, t('handover.noneCarried'))),
    alarms(row.shift_alarms || [], 'shiftAlarms'),
  ];
}

function readingsList(ctx, list, estate) {
  return list.length ? h('ul', {class: 'plain-list'}, list.map((r) => h('li', {},
    sensorLabel(ctx, r.sensor, estate), colon(), h('strong', {}, `${fmtNum(r.value, 3)} ${sensorInfo(ctx, r.sensor, estate)?.unit || ''}`),
    r.at ? h('span', {class: 'muted'}, ` · ${when(r.at, true)}`) : '', r.note ? ` · ${r.note}` : '')))
    : h('p', {class: 'empty'}, t('handover.noneCarried'));
}

function itemsList(list) {
  return list.length ? h('table', {class: 'items-table'},
    h('thead', {}, h('tr', {}, ['handover.itemName', 'handover.quantity', 'handover.itemState', 'handover.itemNote'].map((k) => h('th', {scope: 'col'}, t(k))))),
    h('tbody', {}, list.map((i) => h('tr', {'data-item-state': i.state}, h('td', {}, i.item), h('td', {}, fmtNum(i.quantity, 0)),
      h('td', {}, h('span', {class: ['chip', `item-${i.state}`]}, t(`handover.state.${i.state}`))), h('td', {}, i.note || '')))))
    : h('p', {class: 'empty'}, t('handover.noneCarried'));
}

/** One row of a growing list of inputs (abnormal readings, keys and tools), with a remove button. */
function removable(row, label) {
  const remove = h('button', {type: 'button', class: 'btn btn-quiet', 'aria-label': label}, '✕');
  remove.addEventListener('click', () => row.remove());
  row.append(remove);
  return row;
}

function readingRow(ctx, reading = {}) {
  const sensors = [...ctx.sensors.values()].filter((x) => !x.states || !Object.keys(x.states).length);
  const sensor = select(uid('ab-sensor'), [['', t('handover.pickSensor')], ...sensors.map((x) => [x.id, sensorLabel(ctx, x.id)])], reading.sensor || '');
  const value = h('input', {type: 'number', step: 'any', inputmode: 'decimal', id: uid('ab-value'), value: reading.value ?? ''});
  const note = h('input', {id: uid('ab-note'), maxlength: 2000, value: reading.note || ''});
  return removable(h('div', {class: 'row-inputs', 'data-row': 'reading'}, field(t('handover.sensor'), sensor),
    field(t('check.value'), value), field(t('check.noteCol'), note)), t('handover.removeRow'));
}

function itemRow(item = {}) {
  const name = h('input', {id: uid('kt-name'), maxlength: 200, value: item.item || ''});
  const quantity = h('input', {type: 'number', min: 0, step: 1, inputmode: 'numeric', id: uid('kt-qty'), value: item.quantity ?? 1});
  const state = select(uid('kt-state'), ITEM_STATES.map((s) => [s, t(`handover.state.${s}`)]), item.state || 'present');
  const note = h('input', {id: uid('kt-note'), maxlength: 2000, value: item.note || ''});
  return removable(h('div', {class: 'row-inputs', 'data-row': 'item'}, field(t('handover.itemName'), name),
    field(t('handover.quantity'), quantity), field(t('handover.itemState'), state), field(t('handover.itemNote'), note)),
  t('handover.removeRow'));
}

async function draftPage(main, ctx, queryText) {
  const q = new URLSearchParams(queryText || '');
  const title = t('handover.write');
  if (!ctx.can(...SHIFT_ROLES)) {
    mount(main, pageHeader(title), whyNot(t('handover.onlyShift')), h('p', {}, h('a', {href: '#/handover'}, t('handover.history'))));
    return () => {};
  }
  const room = select('ho-room', [['', t('handover.wholeSite')], ...roomOptions(ctx)], q.get('room') || '');
  const start = h('input', {type: 'datetime-local', id: 'ho-start', value: toLocalInput(new Date(Date.now() - 8 * 3600000))});
  const incoming = select('ho-incoming', [['', t('handover.anyIncoming')],
    ...peopleOptions(ctx, SHIFT_ROLES).filter(([id]) => Number(id) !== ctx.me.id)]);
  const urgent = h('textarea', {id: 'ho-urgent', rows: 3, maxlength: 4000});
  const notes = h('textarea', {id: 'ho-notes', rows: 3, maxlength: 4000});
  const draftSlot = h('div', {class: 'draft-slot', 'aria-live': 'polite'}, loading());
  const readings = h('div', {class: 'rows', id: 'ho-readings'});
  const items = h('div', {class: 'rows', id: 'ho-items'});
  const addReading = h('button', {type: 'button', class: 'btn'}, t('handover.addReading'));
  const addItem = h('button', {type: 'button', class: 'btn'}, t('handover.addItem'));
  addReading.addEventListener('click', () => readings.append(readingRow(ctx)));
  addItem.addEventListener('click', () => items.append(itemRow()));
  const error = errorLine();
  const submit = h('button', {type: 'submit', class: 'btn btn-primary btn-wide'}, t('handover.submit'));
  let token = 0;
  const loadDraft = async () => {
    const mine = ++token;
    draftSlot.replaceChildren(loading());
    const params = new URLSearchParams();
    if (room.value) params.set('room', room.value);
    const from = fromLocalInput(start.value);
    if (from) params.set('shift_started_at', from.toISOString());
    const alarmQuery = new URLSearchParams({state: 'active', limit: '200'});
    if (room.value) alarmQuery.set('room', room.value);
    const lastQuery = new URLSearchParams({limit: '1'});
    if (room.value) lastQuery.set('room', room.value);
    try {
      const [draft, alarms, last] = await Promise.all([get(`/api/handovers/draft?${params}`), get(`/api/alarms?${alarmQuery}`),
        get(`/api/handovers?${lastQuery}`)]);
      if (mine !== token) return;
      draftSlot.replaceChildren(h('p', {class: 'muted'}, t('handover.draftExplain', {time: when(draft.shift_started_at, true)})),
        ...carried(ctx, draft));
      // Abnormal readings: what the active alarms on sensors last read, for the writer to keep or remove.
      readings.replaceChildren(...alarms.data.filter((a) => a.sensor && a.last_value !== null && a.last_value !== undefined
        && ctx.sensors.has(a.sensor)).map((a) => readingRow(ctx, {sensor: a.sensor, value: a.last_value, note: pick(a, 'message')})));
      // Keys and tools as the room's last handover left them (or the usual set).
      const before = last.data[0]?.keys_tools;
      items.replaceChildren(...(before && before.length ? before : DEFAULT_ITEMS.map(([key, n]) => ({item: t(key), quantity: n})))
        .map((i) => itemRow(i)));
    } catch (err) {
      if (mine === token) draftSlot.replaceChildren(h('p', {class: 'error', role: 'alert'}, problemText(err)));
    }
  };
  room.addEventListener('change', loadDraft);
  start.addEventListener('change', loadDraft);
  const form = h('form', {class: 'handover-form', novalidate: true},
    h('section', {class: 'panel'}, h('div', {class: 'form-grid'},
      field(t('handover.room'), room), field(t('handover.shiftStart'), start, {hint: t('approvals.siteTime')}),
      field(t('handover.incoming'), incoming, {hint: t('handover.incomingHint')}))),
    h('section', {class: 'panel', 'aria-labelledby': 'ho-draft-h'}, h('h2', {id: 'ho-draft-h'}, t('handover.carried')), draftSlot),
    h('section', {class: 'panel', 'aria-labelledby': 'ho-urgent-h'}, h('h2', {id: 'ho-urgent-h'}, t('handover.urgentTitle')),
      field(t('handover.urgent'), urgent, {hint: t('handover.urgentHint')}), field(t('handover.notes'), notes)),
    h('section', {class: 'panel', 'aria-labelledby': 'ho-read-h'}, h('h2', {id: 'ho-read-h'}, t('handover.abnormal')),
      h('p', {class: 'muted'}, t('handover.abnormalHint')), readings, addReading),
    h('section', {class: 'panel', 'aria-labelledby': 'ho-items-h'}, h('h2', {id: 'ho-items-h'}, t('handover.keysTools')), items, addItem),
    error.el, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    const abnormal = [];
    for (const row of readings.querySelectorAll('[data-row="reading"]')) {
      const [sensor, value, note] = row.querySelectorAll('select, input');
      if (!sensor.value && value.value === '') continue;
      if (!sensor.value || value.value === '' || !Number.isFinite(value.valueAsNumber)) {
        error.show(t('handover.needReading'));
        (sensor.value ? value : sensor).focus();
        return;
      }
      abnormal.push({sensor: sensor.value, value: value.valueAsNumber, note: note.value.trim() || null});
    }
    const keys = [];
    for (const row of items.querySelectorAll('[data-row="item"]')) {
      const [name, quantity, state, note] = row.querySelectorAll('select, input');
      if (!name.value.trim()) continue;
      keys.push({item: name.value.trim(), quantity: Math.max(0, Math.round(quantity.valueAsNumber || 0)), state: state.value,
        note: note.value.trim() || null});
    }
    const from = fromLocalInput(start.value);
    submit.disabled = true;
    try {
      const row = await post('/api/handovers', {room: room.value || null, shift_started_at: from ? from.toISOString() : null,
        incoming_id: incoming.value ? Number(incoming.value) : null, abnormal_readings: abnormal, keys_tools: keys,
        urgent: urgent.value.trim() || null, notes: notes.value.trim() || null});
      toast(t('handover.sent'));
      announce(t('handover.sent'));
      location.hash = `#/handover/${row.id}`;
    } catch (err) {
      error.show(err);
      submit.disabled = false;
    }
  });
  mount(main, pageHeader(title, h('a', {href: '#/handover', class: 'back'}, t('handover.history'))),
    h('p', {class: 'muted'}, t('handover.writeExplain')), form);
  await loadDraft();
  return () => {};
}

function mayReceive(ctx, row) {
  if (row.state !== 'submitted') return {ok: false};
  if (row.outgoing_id === ctx.me.id) return {ok: false, why: t('why.ownHandover')};
  if (row.incoming_id != null && row.incoming_id !== ctx.me.id) return {ok: false, why: t('handover.forSomeoneElse', {who: personName(ctx, row.incoming_id)})};
  if (!ctx.can(...SHIFT_ROLES)) return {ok: false, why: t('handover.onlyShiftReceive')};
  return {ok: true};
}

function receivePanel(ctx, row, done) {
  const verdict = mayReceive(ctx, row);
  if (!verdict.ok) return verdict.why ? whyNot(verdict.why) : null;
  const pad = signaturePad('ho-sig', t('handover.signHere'));
  const error = errorLine();
  const accept = h('button', {type: 'button', class: 'btn btn-primary', 'data-action': 'accept'}, t('handover.accept'));
  const reason = h('textarea', {id: 'ho-dispute', rows: 2, maxlength: 4000});
  const dispute = h('button', {type: 'button', class: 'btn btn-danger', 'data-action': 'dispute'}, t('handover.dispute'));
  accept.addEventListener('click', async () => {
    error.clear();
    const typed = pad.el.querySelector('.sig-typed')?.value.trim() || '';
    const drawn = pad.el.dataset.signed === 'true';
    if (!typed && !drawn) { error.show(t('sig.missing')); return; }
    const form = new FormData();
    if (typed) form.append('signed_name', typed);
    if (drawn) form.append('signature', await pad.get(), 'signature.png');
    accept.disabled = true;
    try {
      await request('POST', `/api/handovers/${row.id}/accept`, {form});
      toast(t('handover.accepted'));
      announce(t('handover.accepted'));
      done();
    } catch (err) {
      error.show(err);
      accept.disabled = false;
    }
  });
  dispute.addEventListener('click', async () => {
    error.clear();
    if (!reason.value.trim()) { error.show(t('handover.needDispute')); reason.focus(); return; }
    dispute.disabled = true;
    try {
      await post(`/api/handovers/${row.id}/dispute`, {reason: reason.value.trim()});
      toast(t('handover.disputed'));
      announce(t('handover.disputed'));
      done();
    } catch (err) {
      error.show(err);
      dispute.disabled = false;
    }
  });
  return h('section', {class: 'panel receive', 'aria-labelledby': 'ho-receive-h'},
    h('h2', {id: 'ho-receive-h'}, t('handover.receive')), h('p', {class: 'muted'}, t('handover.receiveExplain')),
    pad.el, h('div', {class: 'actions'}, accept),
    field(t('handover.disputeReason'), reason), h('div', {class: 'actions'}, dispute), error.el);
}

async function detailPage(main, ctx, id) {
  mount(main, pageHeader(t('handover.title', {id})), loading());
  const render = async () => {
    let row;
    try {
      row = await get(`/api/handovers/${id}`);
      await ctx.loadNames([row.estate]);
    } catch (err) {
      mount(main, pageHeader(t('handover.title', {id})), h('p', {class: 'error', role: 'alert'}, problemText(err)));
      return;
    }
    const facts = [
      [t('handover.room'), row.room ? roomName(ctx, row.room, row.estate) : t('handover.wholeSite')],
      [t('handover.shift'), period(row.shift_started_at, row.submitted_at)],
      [t('handover.outgoing'), personName(ctx, row.outgoing_id)],
      [t('handover.incoming'), row.incoming_id ? personName(ctx, row.incoming_id) : t('handover.anyIncoming')],
      [t('handover.receivedBy'), row.received_by ? `${personName(ctx, row.received_by)} · ${when(row.received_at)}` : null],
      [t('handover.signedName'), row.signed_name],
      [t('handover.disputeReason'), row.dispute_reason],
      [t('handover.escalated'), row.escalated_at ? when(row.escalated_at) : null],
    ].filter(([, v]) => v);
    mount(main,
      pageHeader(t('handover.title', {id}), requestChip(row.state), h('a', {href: '#/handover', class: 'back'}, t('handover.history'))),
      h('div', {class: 'handover-detail', 'data-handover-id': row.id, 'data-state': row.state},
        h('section', {class: 'panel'}, h('dl', {class: 'facts'}, facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
          row.signature_type ? h('figure', {class: 'signature'}, h('img', {src: `/api/handovers/${row.id}/signature`,
            alt: t('handover.signatureAlt', {who: personName(ctx, row.received_by)}), class: 'signature-img'})) : null),
        row.urgent ? h('section', {class: 'panel urgent', 'aria-labelledby': 'ho-u-h'}, h('h2', {id: 'ho-u-h'}, t('handover.urgent')),
          h('p', {class: 'pre'}, row.urgent)) : null,
        row.notes ? h('section', {class: 'panel', 'aria-labelledby': 'ho-n-h'}, h('h2', {id: 'ho-n-h'}, t('handover.notes')),
          h('p', {class: 'pre'}, row.notes)) : null,
        h('section', {class: 'panel', 'aria-labelledby': 'ho-c-h'}, h('h2', {id: 'ho-c-h'}, t('handover.carried')), carried(ctx, row)),
        h('section', {class: 'panel', 'aria-labelledby': 'ho-r-h'}, h('h2', {id: 'ho-r-h'}, t('handover.abnormal')),
          readingsList(ctx, row.abnormal_readings || [], row.estate)),
        h('section', {class: 'panel', 'aria-labelledby': 'ho-k-h'}, h('h2', {id: 'ho-k-h'}, t('handover.keysTools')),
          itemsList(row.keys_tools || [])),
        receivePanel(ctx, row, render)));
  };
  await render();
  return () => {};
}

async function historyPage(main, ctx, queryText) {
  const q = new URLSearchParams(queryText || '');
  const filters = {room: q.get('room') || '', person: q.get('person') || '', state: q.get('state') || '', q: q.get('q') || '',
    since: '', until: ''};
  let offset = 0;
  const slot = h('div', {class: 'handover-list', 'aria-live': 'polite'}, loading());
  const pager = h('div', {class: 'pager'});
  const render = async () => {
    const params = new URLSearchParams({limit: String(PAGE), offset: String(offset)});
    for (const key of ['room', 'person', 'state', 'q']) if (filters[key]) params.set(key, filters[key]);
    if (filters.since) params.set('since', fromLocalInput(filters.since).toISOString());
    if (filters.until) params.set('until', fromLocalInput(filters.until).toISOString());
    let page;
    try {
      page = await get(`/api/handovers?${params}`);
      await ctx.loadNames(page.data.map((row) => row.estate));
    } catch (err) {
      slot.replaceChildren(h('p', {class: 'error', role: 'alert'}, problemText(err)));
      return;
    }
    slot.replaceChildren(
      h('p', {class: 'muted', role: 'status'}, t('audit.shown', {from: fmtNum(page.count ? offset + 1 : 0, 0),
        to: fmtNum(offset + page.data.length, 0), total: fmtNum(page.count, 0)})),
      page.data.length ? h('ul', {class: 'plain-list handover-cards'}, page.data.map((row) => {
        const forMe = mayReceive(ctx, row).ok;
        return h('li', {class: ['panel', 'handover-card', forMe ? 'is-mine' : ''], 'data-handover-id': row.id, 'data-state': row.state},
          h('div', {class: 'card-head'}, h('a', {href: `#/handover/${row.id}`}, h('strong', {}, t('handover.title', {id: row.id})), ' · ',
            row.room ? roomName(ctx, row.room, row.estate) : t('handover.wholeSite')),
          h('span', {}, requestChip(row.state), forMe ? h('span', {class: 'chip chip-mine'}, t('handover.forYou')) : null)),
          h('p', {class: 'muted'}, t('handover.line', {out: personName(ctx, row.outgoing_id), at: when(row.submitted_at, true),
            alarms: fmtNum(row.open_alarms.length, 0), tasks: fmtNum(row.open_tasks.length, 0)})),
          row.urgent ? h('p', {class: 'urgent-line'}, h('strong', {}, t('handover.urgent'), colon()), row.urgent) : null,
          row.state !== 'submitted' && row.received_by ? h('p', {class: 'muted'}, t(`handover.by.${row.state}`,
            {who: personName(ctx, row.received_by), at: when(row.received_at, true)})) : null);
      })) : h('p', {class: 'empty-state'}, t('handover.none')));
    pager.replaceChildren();
    const prev = h('button', {type: 'button', class: 'btn', disabled: offset === 0}, t('common.prev'));
    const next = h('button', {type: 'button', class: 'btn', disabled: offset + PAGE >= page.count}, t('common.next'));
    prev.addEventListener('click', () => { offset = Math.max(0, offset - PAGE); render(); });
    next.addEventListener('click', () => { offset += PAGE; render(); });
    pager.append(prev, next);
  };
  const control = (key, label, el) => {
    el.addEventListener('change', () => { filters[key] = el.value.trim(); offset = 0; render(); });
    return field(label, el);
  };
  const text = h('input', {id: 'hf-q', type: 'search', maxlength: 200, value: filters.q});
  const form = h('form', {class: 'filters handover-filters', role: 'search', 'aria-label': t('handover.search')},
    control('room', t('handover.room'), select('hf-room', [['', t('alarms.all')], ...roomOptions(ctx)], filters.room)),
    control('person', t('handover.person'), select('hf-person', [['', t('alarms.all')], ...peopleOptions(ctx)], filters.person)),
    control('state', t('task.state'), select('hf-state', [['', t('alarms.all')], ...['submitted', 'accepted', 'disputed']
      .map((s) => [s, t(`req.${s}`)])], filters.state)),
    control('since', t('audit.since'), h('input', {id: 'hf-since', type: 'date'})),
    control('until', t('audit.until'), h('input', {id: 'hf-until', type: 'date'})),
    control('q', t('handover.text'), text));
  form.addEventListener('submit', (event) => { event.preventDefault(); filters.q = text.value.trim(); offset = 0; render(); });
  const write = ctx.can(...SHIFT_ROLES) ? h('a', {href: '#/handover/new', class: 'btn btn-primary', id: 'write-handover'}, t('handover.write')) : null;
  mount(main, pageHeader(t('nav.handover'), h('div', {class: 'head-tools'}, write)),
    h('p', {class: 'muted'}, t('handover.explain')), form, slot, pager);
  await render();
  return () => {};
}

/** `#/handover`, `#/handover/new?room=`, `#/handover/N`. */
export function handoverPage(main, ctx, rest, queryText) {
  if (rest === 'new') return draftPage(main, ctx, queryText);
  if (rest && /^\d+$/.test(rest)) return detailPage(main, ctx, Number(rest));
  return historyPage(main, ctx, queryText);
}

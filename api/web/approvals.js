// The approvals inbox: pump-room access requests (supervisor and director, two people), change requests
// (the supervisor) and approved exceptions for switches out of AUTO (a supervisor), each with a form to
// ask for one. People by name, times in the site's zone. Separation of duties is shown, not just
// enforced: what the server would refuse this user is left out or disabled, with the reason beside it.
// The escort confirms the visitor's entry and exit from here too.

import {get, post} from './api.js';
import {equipmentName, loading, pageHeader, personName, roomName, sensorInfo} from './common.js';
import {announce, h, mount, toast} from './dom.js';
import {
  aside, colon, equipmentOptions, errorLine, field, peopleOptions, period, place, problemText, requestChip, roomOptions,
  select, uid, when, whyNot,
} from './forms.js';
import {fmtNum, pick, t} from './i18n.js';
import {fromLocalInput, toLocalInput} from './sitetime.js';

const TABS = ['access', 'change', 'exceptions'];
const STAFF = ['operator', 'technician', 'supervisor', 'director', 'admin'];

/** The roles this user may act in now: held, or as an active deputy (with whom they stand in for). */
export function actingRoles(ctx, deputies, now = Date.now()) {
  const acting = new Map(ctx.me.roles.map((role) => [role, {held: true, principals: []}]));
  for (const d of deputies) {
    if (d.deputy_id !== ctx.me.id) continue;
    if (new Date(d.valid_from).getTime() > now || (d.valid_until && new Date(d.valid_until).getTime() <= now)) continue;
    const entry = acting.get(d.role) || {held: false, principals: []};
    entry.principals.push(d.principal_id);
    acting.set(d.role, entry);
  }
  return acting;
}

/** Whether this user may decide in `role` on a request whose parties are `excluded`: true, or why not. */
function mayDecide(acting, role, excluded) {
  const entry = acting.get(role);
  if (!entry) return 'role';
  if (entry.held) return true;
  return entry.principals.some((p) => !excluded.includes(p)) ? true : 'deputy';
}

function hasRole(acting, ...roles) { return roles.some((r) => acting.has(r)); }

/** What this user may do with an access request, and why not. */
export function accessOptions(ctx, acting, row, now = Date.now()) {
  const me = ctx.me.id;
  const out = {approve: false, reject: false, enter: false, exit: false, why: null};
  const isEscort = me === row.escort_id || me === row.escort_deputy_id;
  if (row.state === 'pending') {
    const decider = hasRole(acting, 'supervisor', 'director');
    out.reject = decider;
    if (row.requested_by === me) out.why = decider ? t('why.ownRequest') : null;
    else if (me === row.supervisor_approved_by || me === row.director_approved_by) out.why = t('why.twoPeople');
    else {
      const excluded = [row.requested_by, row.supervisor_approved_by, row.director_approved_by];
      const slots = [['supervisor', row.supervisor_approved_by], ['director', row.director_approved_by]];
      const verdicts = slots.filter(([, by]) => !by).map(([role]) => mayDecide(acting, role, excluded));
      if (verdicts.includes(true)) out.approve = true;
      else if (verdicts.includes('deputy')) out.why = t('why.deputyForRequester');
      else if (decider) out.why = t('why.slotTaken');
    }
  }
  if (isEscort && row.state === 'approved' && !row.entered_at) {
    const inside = new Date(row.window_start).getTime() <= now && now < new Date(row.window_end).getTime();
    out.enter = inside;
    if (!inside) out.why = t('why.outsideWindowAt', {from: when(row.window_start, true), to: when(row.window_end, true)});
  }
  if (isEscort && row.entered_at && !row.exited_at) out.exit = true;
  return out;
}

function changeOptions(ctx, acting, row) {
  const out = {approve: false, reject: false, why: null};
  if (row.state !== 'pending') return out;
  const verdict = mayDecide(acting, 'supervisor', [row.requested_by]);
  out.reject = mayDecide(acting, 'supervisor', []) === true;
  if (row.requested_by === ctx.me.id) out.why = out.reject ? t('why.ownRequestWithdraw') : null;
  else if (verdict === true) out.approve = true;
  else if (verdict === 'deputy') out.why = t('why.deputyForRequester');
  else if (ctx.can('admin')) out.why = t('why.needSupervisor');
  return out;
}

function exceptionOptions(ctx, acting, row) {
  const out = {approve: false, reject: false, revoke: false, why: null};
  const supervisor = mayDecide(acting, 'supervisor', []) === true;
  if (['pending', 'approved'].includes(row.state)) out.revoke = supervisor || row.requested_by === ctx.me.id;
  if (row.state !== 'pending') return out;
  out.reject = supervisor;
  const verdict = mayDecide(acting, 'supervisor', [row.requested_by]);
  if (row.requested_by === ctx.me.id) out.why = supervisor ? t('why.ownRequest') : null;
  else if (verdict === true) out.approve = true;
  else if (verdict === 'deputy') out.why = t('why.deputyForRequester');
  else if (ctx.can('admin')) out.why = t('why.needSupervisor');
  return out;
}

/** A reason box that opens under a button (reject, revoke): the action runs with what was typed. */
function reasonAction(label, attrs, placeholderKey, run) {
  const wrap = h('div', {class: 'reason-action'});
  const open = h('button', {type: 'button', class: 'btn btn-danger', ...attrs, 'aria-expanded': 'false'}, label);
  open.addEventListener('click', () => {
    if (wrap.querySelector('form')) { wrap.querySelector('textarea').focus(); return; }
    open.setAttribute('aria-expanded', 'true');
    const text = h('textarea', {rows: 2, maxlength: 4000, id: uid('reason'), class: 'reason'});
    const error = errorLine();
    const confirm = h('button', {type: 'submit', class: 'btn btn-danger', 'data-confirm': attrs['data-action']}, t('approvals.confirm', {action: label}));
    const cancel = h('button', {type: 'button', class: 'btn btn-quiet'}, t('approvals.cancel'));
    const form = h('form', {class: 'reason-form', novalidate: true}, field(t(placeholderKey), text, {required: true}), error.el,
      h('div', {class: 'actions'}, confirm, cancel));
    cancel.addEventListener('click', () => { form.remove(); open.setAttribute('aria-expanded', 'false'); open.focus(); });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (!text.value.trim()) { error.show(t('approvals.needReason')); text.focus(); return; }
      confirm.disabled = true;
      try {
        await run(text.value.trim());
      } catch (err) {
        error.show(err);
        confirm.disabled = false;
      }
    });
    wrap.append(form);
    text.focus();
  });
  wrap.prepend(open);
  return wrap;
}

function doButton(label, attrs, run, error) {
  const button = h('button', {type: 'button', class: 'btn btn-primary', ...attrs}, label);
  button.addEventListener('click', async () => {
    button.disabled = true;
    error.clear();
    try {
      await run();
    } catch (err) {
      error.show(err);
      button.disabled = false;
    }
  });
  return button;
}

function who(ctx, id) { return id == null ? '—' : personName(ctx, id); }

function approvalLine(ctx, by, at, waitingKey) {
  return by ? t('approvals.approvedBy', {who: who(ctx, by), at: when(at, true)}) : h('span', {class: 'waiting'}, t(waitingKey));
}

function facts(rows) {
  return h('dl', {class: 'facts'}, rows.filter(([, value]) => value !== null && value !== undefined && value !== '')
    .flatMap(([label, value]) => [h('dt', {}, label), h('dd', {}, value)]));
}

function accessCard(ctx, acting, row, done) {
  const options = accessOptions(ctx, acting, row);
  const error = errorLine();
  const act = (path, body, message) => async () => {
    await post(`/api/access-requests/${row.id}/${path}`, body);
    toast(message);
    announce(message);
    done();
  };
  const actions = [
    options.approve ? doButton(t('approvals.approve'), {'data-action': 'approve'}, act('approve', undefined, t('approvals.approved')), error) : null,
    options.reject ? reasonAction(t('approvals.reject'), {'data-action': 'reject'}, 'approvals.rejectReason',
      (reason) => act('reject', {reason}, t('approvals.rejected'))()) : null,
    options.enter ? doButton(t('approvals.enter'), {'data-action': 'enter'}, act('enter', undefined, t('approvals.enteredDone')), error) : null,
    options.exit ? doButton(t('approvals.exit'), {'data-action': 'exit'}, act('exit', undefined, t('approvals.exitedDone')), error) : null,
  ].filter(Boolean);
  const mine = options.approve || options.enter || options.exit;
  return h('article', {class: ['panel', 'request-card', mine ? 'is-mine' : ''], 'data-request': `access-${row.id}`,
    'data-state': row.state, 'aria-labelledby': `acc-${row.id}`},
  h('header', {class: 'card-head'},
    h('h3', {id: `acc-${row.id}`}, t('approvals.access.heading', {visitor: row.visitor}),
      row.organisation ? h('span', {class: 'muted'}, aside('', row.organisation)) : null),
    h('span', {}, requestChip(row.state), mine ? h('span', {class: 'chip chip-mine'}, t('approvals.forYou')) : null)),
  facts([
    [t('approvals.room'), roomName(ctx, row.room, row.estate)],
    [t('approvals.window'), period(row.window_start, row.window_end)],
    [t('approvals.purpose'), row.purpose],
    [t('approvals.escort'), who(ctx, row.escort_id)],
    [t('approvals.escortDeputy'), row.escort_deputy_id ? who(ctx, row.escort_deputy_id) : null],
    [t('approvals.requestedBy'), `${who(ctx, row.requested_by)} · ${when(row.created_at, true)}`],
    [t('approvals.supervisorApproval'), approvalLine(ctx, row.supervisor_approved_by, row.supervisor_approved_at, 'approvals.waitSupervisor')],
    [t('approvals.directorApproval'), approvalLine(ctx, row.director_approved_by, row.director_approved_at, 'approvals.waitDirector')],
    [t('approvals.reason'), row.decided_reason],
    [t('approvals.entered'), row.entered_at ? when(row.entered_at) : null],
    [t('approvals.exited'), row.exited_at ? when(row.exited_at) : null],
  ]),
  options.why ? whyNot(options.why) : null,
  error.el,
  actions.length ? h('div', {class: 'actions'}, actions) : null);
}

function changeCard(ctx, acting, row, done) {
  const options = changeOptions(ctx, acting, row);
  const error = errorLine();
  const act = (path, body, message) => async () => {
    await post(`/api/change-requests/${row.id}/${path}`, body);
    toast(message);
    announce(message);
    done();
  };
  return h('article', {class: ['panel', 'request-card', options.approve ? 'is-mine' : ''], 'data-request': `change-${row.id}`,
    'data-state': row.state, 'aria-labelledby': `chg-${row.id}`},
  h('header', {class: 'card-head'}, h('h3', {id: `chg-${row.id}`}, row.title),
    h('span', {}, requestChip(row.state), options.approve ? h('span', {class: 'chip chip-mine'}, t('approvals.forYou')) : null)),
  facts([
    [t('approvals.where'), place(ctx, row.asset, row.room, row.estate) || '—'],
    [t('task.description'), row.description],
    [t('approvals.requestedBy'), `${who(ctx, row.requested_by)} · ${when(row.created_at, true)}`],
    [t('approvals.decidedBy'), row.decided_by ? `${who(ctx, row.decided_by)} · ${when(row.decided_at, true)}` : null],
    [t('approvals.reason'), row.decided_reason],
    [t('approvals.task'), row.task_id ? h('a', {href: `#/task/${row.task_id}`}, t('task.title', {id: row.task_id})) : null],
  ]),
  options.why ? whyNot(options.why) : null,
  error.el,
  h('div', {class: 'actions'},
    options.approve ? doButton(t('approvals.approveChange'), {'data-action': 'approve'}, act('approve', undefined, t('approvals.approved')), error) : null,
    options.reject ? reasonAction(row.requested_by === ctx.me.id ? t('approvals.withdraw') : t('approvals.reject'), {'data-action': 'reject'},
      'approvals.rejectReason', (reason) => act('reject', {reason}, t('approvals.rejected'))()) : null));
}

function switchName(ctx, row) {
  const sensor = row.sensor && sensorInfo(ctx, row.sensor, row.estate);
  return sensor && sensor.name ? pick(sensor.name) : equipmentName(ctx, row.asset, row.estate);
}

export function exceptionCard(ctx, acting, row, done) {
  const options = exceptionOptions(ctx, acting, row);
  const error = errorLine();
  const act = (path, body, message) => async () => {
    await post(`/api/exceptions/${row.id}/${path}`, body);
    toast(message);
    announce(message);
    done();
  };
  const now = Date.now();
  const inForce = row.state === 'approved' && new Date(row.starts_at).getTime() <= now && new Date(row.ends_at).getTime() > now;
  return h('article', {class: ['panel', 'request-card', options.approve ? 'is-mine' : '', inForce ? 'in-force' : ''],
    'data-request': `exception-${row.id}`, 'data-state': row.state, 'aria-labelledby': `exc-${row.id}`},
  h('header', {class: 'card-head'},
    h('h3', {id: `exc-${row.id}`}, t('exc.heading', {name: switchName(ctx, row)})),
    h('span', {}, requestChip(row.state), inForce ? h('span', {class: 'chip chip-in-force'}, t('exc.inForceChip')) : null,
      options.approve ? h('span', {class: 'chip chip-mine'}, t('approvals.forYou')) : null)),
  facts([
    [t('approvals.where'), place(ctx, row.asset, row.room, row.estate)],
    [t('exc.window'), period(row.starts_at, row.ends_at)],
    [t('exc.reason'), row.reason],
    [t('approvals.requestedBy'), `${who(ctx, row.requested_by)} · ${when(row.created_at, true)}`],
    [t('approvals.decidedBy'), row.decided_by ? `${who(ctx, row.decided_by)} · ${when(row.decided_at, true)}` : null],
    [t('approvals.reason'), row.decided_reason],
    [t('exc.ended'), row.ended_at ? `${who(ctx, row.ended_by)} · ${when(row.ended_at, true)}${row.end_reason ? `${colon()}${row.end_reason}` : ''}` : null],
    [t('exc.alarm'), row.alarm_id ? h('a', {href: `#/alarms`}, t('exc.alarmHeld', {id: row.alarm_id})) : null],
    [t('approvals.task'), row.task_id ? h('a', {href: `#/task/${row.task_id}`}, t('task.title', {id: row.task_id})) : null],
  ]),
  options.why ? whyNot(options.why) : null,
  error.el,
  h('div', {class: 'actions'},
    options.approve ? doButton(t('approvals.approve'), {'data-action': 'approve'}, act('approve', undefined, t('approvals.approved')), error) : null,
    options.reject ? reasonAction(t('approvals.reject'), {'data-action': 'reject'}, 'approvals.rejectReason',
      (reason) => act('reject', {reason}, t('approvals.rejected'))()) : null,
    options.revoke ? reasonAction(row.state === 'approved' ? t('exc.revoke') : t('exc.cancel'), {'data-action': 'revoke'},
      'exc.revokeReason', (reason) => act('revoke', {reason}, t('exc.revoked'))()) : null));
}

function windowInputs(prefix, hours = 2) {
  const start = h('input', {type: 'datetime-local', id: `${prefix}-start`});
  const end = h('input', {type: 'datetime-local', id: `${prefix}-end`});
  const from = new Date(Math.ceil(Date.now() / 900000) * 900000 + 900000);
  start.value = toLocalInput(from);
  end.value = toLocalInput(new Date(from.getTime() + hours * 3600000));
  return {start, end};
}

function accessForm(ctx, done) {
  const visitor = h('input', {id: 'acc-visitor', maxlength: 200, autocomplete: 'off'});
  const organisation = h('input', {id: 'acc-org', maxlength: 200});
  const purpose = h('textarea', {id: 'acc-purpose', rows: 2, maxlength: 2000});
  const room = select('acc-room', roomOptions(ctx));
  const staff = peopleOptions(ctx, STAFF);
  const escort = select('acc-escort', [['', t('approvals.pickPerson')], ...staff], '');
  const deputy = select('acc-escort-deputy', [['', t('approvals.noDeputy')], ...staff]);
  const {start, end} = windowInputs('acc');
  const error = errorLine();
  const form = h('form', {class: 'request-form', novalidate: true, 'data-form': 'access'},
    h('p', {class: 'muted'}, t('approvals.access.explain')),
    h('div', {class: 'form-grid'},
      field(t('approvals.visitor'), visitor, {required: true}), field(t('approvals.organisation'), organisation),
      field(t('approvals.room'), room, {required: true}),
      field(t('approvals.windowStart'), start, {required: true, hint: t('approvals.siteTime')}),
      field(t('approvals.windowEnd'), end, {required: true}),
      field(t('approvals.escort'), escort, {required: true}), field(t('approvals.escortDeputy'), deputy),
      field(t('approvals.purpose'), purpose, {required: true, wide: true})),
    error.el, h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'btn btn-primary'}, t('approvals.submit'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    if (!visitor.value.trim()) { error.show(t('approvals.needVisitor')); visitor.focus(); return; }
    if (!purpose.value.trim()) { error.show(t('approvals.needPurpose')); purpose.focus(); return; }
    if (!escort.value) { error.show(t('approvals.needEscort')); escort.focus(); return; }
    if (deputy.value && deputy.value === escort.value) { error.show(t('approvals.deputyNotEscort')); deputy.focus(); return; }
    const from = fromLocalInput(start.value);
    const to = fromLocalInput(end.value);
    if (!from || !to) { error.show(t('approvals.needWindow')); start.focus(); return; }
    if (to <= from) { error.show(t('why.endAfterStart')); end.focus(); return; }
    try {
      await post('/api/access-requests', {visitor: visitor.value.trim(), organisation: organisation.value.trim() || null,
        purpose: purpose.value.trim(), room: room.value, window_start: from.toISOString(), window_end: to.toISOString(),
        escort_id: Number(escort.value), escort_deputy_id: deputy.value ? Number(deputy.value) : null});
      toast(t('approvals.sent'));
      announce(t('approvals.sent'));
      done();
    } catch (err) { error.show(err); }
  });
  return form;
}

function changeForm(ctx, done) {
  const title = h('input', {id: 'chg-title', maxlength: 200});
  const description = h('textarea', {id: 'chg-desc', rows: 3, maxlength: 4000});
  const room = select('chg-room', [['', t('tb.new.anyRoom')], ...roomOptions(ctx)]);
  const asset = select('chg-asset', [['', t('tb.new.noAsset')], ...equipmentOptions(ctx)]);
  const error = errorLine();
  const form = h('form', {class: 'request-form', novalidate: true, 'data-form': 'change'},
    h('p', {class: 'muted'}, t('approvals.change.explain')),
    h('div', {class: 'form-grid'}, field(t('approvals.changeTitle'), title, {required: true}), field(t('task.room'), room),
      field(t('task.asset'), asset), field(t('task.description'), description, {required: true, wide: true})),
    error.el, h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'btn btn-primary'}, t('approvals.submit'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    if (!title.value.trim()) { error.show(t('approvals.needTitle')); title.focus(); return; }
    if (!description.value.trim()) { error.show(t('approvals.needDescription')); description.focus(); return; }
    const assetRoom = asset.value ? ctx.roomOf(asset.value)?.id : null;
    try {
      await post('/api/change-requests', {title: title.value.trim(), description: description.value.trim(),
        room: room.value || assetRoom || null, asset: asset.value || null});
      toast(t('approvals.sent'));
      announce(t('approvals.sent'));
      done();
    } catch (err) { error.show(err); }
  });
  return form;
}

function exceptionForm(ctx, done) {
  const switches = [...ctx.sensors.values()].filter((x) => x.kind === 'switch_position' && x.states && 'AUTO' in x.states);
  const sensor = select('exc-sensor', [['', t('exc.pickSwitch')], ...switches.map((x) => [x.id,
    aside(pick(x.name) || x.id, `${equipmentName(ctx, x.equipment)} · ${roomName(ctx, x.room)}`)])]);
  const reason = h('textarea', {id: 'exc-reason', rows: 2, maxlength: 4000});
  const {start, end} = windowInputs('exc', 8);
  const error = errorLine();
  const form = h('form', {class: 'request-form', novalidate: true, 'data-form': 'exception'},
    h('p', {class: 'muted'}, t('exc.explain')),
    h('div', {class: 'form-grid'}, field(t('exc.switch'), sensor, {required: true}),
      field(t('exc.starts'), start, {required: true, hint: t('approvals.siteTime')}), field(t('exc.ends'), end, {required: true, hint: t('exc.maxHint')}),
      field(t('exc.reason'), reason, {required: true, wide: true})),
    error.el, h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'btn btn-primary'}, t('approvals.submit'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    if (!sensor.value) { error.show(t('exc.needSwitch')); sensor.focus(); return; }
    if (!reason.value.trim()) { error.show(t('exc.needReason')); reason.focus(); return; }
    const from = fromLocalInput(start.value);
    const to = fromLocalInput(end.value);
    if (!from || !to) { error.show(t('approvals.needWindow')); start.focus(); return; }
    if (to <= from) { error.show(t('why.endAfterStart')); end.focus(); return; }
    try {
      await post('/api/exceptions', {sensor: sensor.value, reason: reason.value.trim(), starts_at: from.toISOString(),
        ends_at: to.toISOString()});
      toast(t('approvals.sent'));
      announce(t('approvals.sent'));
      done();
    } catch (err) { error.show(err); }
  });
  return form;
}

const FORMS = {access: accessForm, change: changeForm, exceptions: exceptionForm};

/** How many requests wait for this user's decision or confirmation (the overview's tile). */
export async function waitingForMe(ctx) {
  const [access, change, exceptions, deputies] = await Promise.all([get('/api/access-requests?state=pending'),
    get('/api/change-requests?state=pending'), get('/api/exceptions?state=pending&limit=500'),
    get('/api/users/deputies').catch(() => ({data: []}))]);
  const acting = actingRoles(ctx, deputies.data);
  return access.data.filter((row) => accessOptions(ctx, acting, row).approve).length
    + change.data.filter((row) => changeOptions(ctx, acting, row).approve).length
    + exceptions.data.filter((row) => exceptionOptions(ctx, acting, row).approve).length;
}
const ORDER = {pending: 0, approved: 1};

function sorted(rows) {
  return rows.slice().sort((a, b) => (ORDER[a.state] ?? 2) - (ORDER[b.state] ?? 2) || b.id - a.id);
}

/** `#/approvals?tab=access|change|exceptions&state=...`; `#/exceptions` is the exceptions tab on its own. */
export async function approvalsPage(main, ctx, queryText, only) {
  const q = new URLSearchParams(queryText || '');
  let tab = only || (TABS.includes(q.get('tab')) ? q.get('tab') : null);
  const stateFilter = {value: q.get('state') || 'open'};
  const title = only === 'exceptions' ? t('nav.exceptions') : t('nav.approvals');
  mount(main, pageHeader(title), loading());
  let data = {access: [], change: [], exceptions: []};
  let acting = new Map();
  let stopped = false;
  const slot = h('div', {class: 'requests', 'aria-live': 'polite'});
  const tabsNav = h('div', {class: 'tabs'});
  const formSlot = h('div', {class: 'form-slot'});
  const newButton = h('button', {type: 'button', class: 'btn btn-primary', id: 'new-request', 'aria-expanded': 'false',
    'aria-controls': 'request-form-panel'});

  const load = async () => {
    const [access, change, exceptions, deputies] = await Promise.all([
      get('/api/access-requests'), get('/api/change-requests'), get('/api/exceptions?limit=500'),
      get('/api/users/deputies').catch(() => ({data: []}))]);
    data = {access: access.data, change: change.data, exceptions: exceptions.data};
    acting = actingRoles(ctx, deputies.data);
    await ctx.loadNames([...access.data, ...change.data, ...exceptions.data].map((row) => row.estate));
  };
  const forMe = (key) => {
    const rows = data[key];
    if (key === 'access') return rows.filter((row) => { const o = accessOptions(ctx, acting, row); return o.approve || o.enter || o.exit; });
    if (key === 'change') return rows.filter((row) => changeOptions(ctx, acting, row).approve);
    return rows.filter((row) => exceptionOptions(ctx, acting, row).approve);
  };
  const showing = (row) => (stateFilter.value === 'open' ? ['pending', 'approved'].includes(row.state) && !(row.exited_at)
    : stateFilter.value === 'all' || row.state === stateFilter.value);
  const draw = () => {
    if (!tab) tab = TABS.find((key) => forMe(key).length) || 'access';
    tabsNav.replaceChildren(...(only ? [] : TABS.map((key) => {
      const waiting = forMe(key).length;
      return h('a', {href: `#/approvals?tab=${key}`, class: 'tab', 'data-tab': key, 'aria-current': key === tab ? 'page' : undefined},
        t(`approvals.tab.${key}`), waiting ? h('span', {class: 'count count-mine', 'data-waiting': waiting},
          t('approvals.waitingCount', {n: fmtNum(waiting, 0)})) : null);
    })));
    newButton.textContent = t(`approvals.new.${tab}`);
    const done = () => { formSlot.replaceChildren(); newButton.setAttribute('aria-expanded', 'false'); refresh(); };
    const card = {access: accessCard, change: changeCard, exceptions: exceptionCard}[tab];
    const rows = sorted(data[tab].filter(showing));
    const focus = Number(q.get('id'));
    slot.replaceChildren(
      h('p', {class: 'muted', role: 'status'}, t('approvals.shown', {n: fmtNum(rows.length, 0), total: fmtNum(data[tab].length, 0)})),
      rows.length ? h('div', {class: 'request-list'}, rows.map((row) => {
        const el = card(ctx, acting, row, done);
        if (row.id === focus) el.classList.add('is-focused');
        return el;
      })) : h('p', {class: 'empty-state'}, t('approvals.none')));
  };
  const refresh = async () => {
    try {
      await load();
    } catch (err) {
      slot.replaceChildren(h('p', {class: 'error', role: 'alert'}, problemText(err)));
      return;
    }
    if (!stopped) draw();
  };
  newButton.addEventListener('click', () => {
    const open = newButton.getAttribute('aria-expanded') === 'true';
    newButton.setAttribute('aria-expanded', String(!open));
    formSlot.replaceChildren(open ? '' : h('section', {class: 'panel', id: 'request-form-panel', 'aria-labelledby': 'request-form-h'},
      h('h2', {id: 'request-form-h'}, t(`approvals.new.${tab}`)),
      FORMS[tab](ctx, () => { formSlot.replaceChildren(); newButton.setAttribute('aria-expanded', 'false'); refresh(); })));
    if (!open) formSlot.querySelector('input, select, textarea')?.focus();
  });
  const stateSelect = select('req-state', [['open', t('approvals.state.open')], ['pending', t('req.pending')],
    ['approved', t('req.approved')], ['all', t('alarms.all')]], stateFilter.value);
  stateSelect.addEventListener('change', () => { stateFilter.value = stateSelect.value; draw(); });
  await refresh();
  mount(main, pageHeader(title, h('div', {class: 'head-tools'}, newButton)),
    only === 'exceptions' ? h('p', {class: 'muted'}, t('exc.pageExplain')) : h('p', {class: 'muted'}, t('approvals.explain')),
    tabsNav, formSlot,
    h('form', {class: 'filters tb-filters', 'aria-label': t('approvals.filters')},
      h('div', {class: 'field field-inline'}, h('label', {for: 'req-state'}, t('task.state')), stateSelect)),
    slot);
  const every = setInterval(() => { if (!formSlot.childNodes.length && !main.querySelector('.reason-form')) refresh(); }, 30000);
  return () => { stopped = true; clearInterval(every); };
}

export function exceptionsPage(main, ctx, queryText) { return approvalsPage(main, ctx, queryText, 'exceptions'); }

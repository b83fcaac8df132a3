// User administration (admin): create users, change roles, deactivate and reactivate, set a new password,
// sign someone out everywhere; deputies with their periods; failed sign-ins by name and address, with
// the delay cleared for a known account.

import {get, post, request} from './api.js';
import {loading, pageHeader} from './common.js';
import {announce, h, mount, toast} from './dom.js';
import {errorLine, field, problemText, select, when} from './forms.js';
import {fmtNum, pick, t} from './i18n.js';
import {fromLocalInput, toLocalInput} from './sitetime.js';

const ROLES = ['operator', 'technician', 'supervisor', 'director', 'admin'];
const DEPUTISABLE = ['operator', 'technician', 'supervisor', 'director'];
const MIN_PASSWORD = 10;

const patch = (path, json) => request('PATCH', path, {json});

function roleChips(roles) {
  return roles.length ? roles.map((r) => h('span', {class: ['chip', 'role-chip', `role-${r}`]}, t(`role.${r}`)))
    : h('span', {class: 'muted'}, t('users.noRoles'));
}

function roleBoxes(prefix, chosen = []) {
  return h('div', {class: 'check-row', role: 'group', 'aria-label': t('users.roles')}, ROLES.map((r) => {
    const id = `${prefix}-${r}`;
    return h('span', {class: 'check'}, h('input', {type: 'checkbox', id, value: r, checked: chosen.includes(r)}),
      h('label', {for: id}, t(`role.${r}`)));
  }));
}

let estates = [];  // the deployment's estates (GET /api/estates; an admin's scope is the organisation)

function estateName(id) {
  const estate = estates.find((e) => e.id === id);
  return estate ? pick(estate.name) : id;
}

function estateChips(user) {
  return user.estates == null ? h('span', {class: 'chip'}, t('users.wholeOrganisation'))
    : user.estates.map((id) => h('span', {class: 'chip estate-chip', 'data-estate': id}, estateName(id)));
}

/** Which estates the roles are held for: the whole organisation, or the estates ticked. */
function estateBoxes(prefix, chosen = null) {
  const wholeId = `${prefix}-whole`;
  const whole = h('input', {type: 'checkbox', id: wholeId, 'data-whole': 'true', checked: chosen == null});
  const boxes = estates.map((e) => {
    const id = `${prefix}-${e.id}`;
    return h('span', {class: 'check'}, h('input', {type: 'checkbox', id, value: e.id, disabled: chosen == null,
      checked: chosen != null && chosen.includes(e.id)}), h('label', {for: id}, estateName(e.id)));
  });
  whole.addEventListener('change', () => {
    for (const box of boxes) box.querySelector('input').disabled = whole.checked;
  });
  return h('div', {class: 'check-row', role: 'group', 'aria-label': t('users.estates')},
    h('span', {class: 'check'}, whole, h('label', {for: wholeId}, t('users.wholeOrganisation'))), ...boxes);
}

/** The estates ticked: null for the whole organisation, [] when none is (refused by the caller). */
function checkedEstates(root) {
  if (root.querySelector('input[data-whole]').checked) return null;
  return [...root.querySelectorAll('input[type=checkbox]:not([data-whole]):checked')].map((box) => box.value);
}

function checkedRoles(root) { return [...root.querySelectorAll('input[type=checkbox]:checked')].map((box) => box.value); }

function done(message, reload) {
  toast(message);
  announce(message);
  reload();
}

function passwordPair(prefix) {
  const one = h('input', {type: 'password', id: `${prefix}-pw`, autocomplete: 'new-password', minlength: MIN_PASSWORD});
  const two = h('input', {type: 'password', id: `${prefix}-pw2`, autocomplete: 'new-password', minlength: MIN_PASSWORD});
  return {
    fields: [field(t('users.password'), one, {required: true, hint: t('users.passwordHint', {n: MIN_PASSWORD})}),
      field(t('users.passwordAgain'), two, {required: true})],
    check() {
      if (one.value.length < MIN_PASSWORD) { one.focus(); return t('users.passwordShort', {n: MIN_PASSWORD}); }
      if (one.value !== two.value) { two.focus(); return t('users.passwordMismatch'); }
      return null;
    },
    value: () => one.value,
  };
}

function createForm(reload) {
  const username = h('input', {id: 'nu-name', maxlength: 64, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false',
    pattern: '[A-Za-z0-9_.@\\-]+'});
  const display = h('input', {id: 'nu-display', maxlength: 128});
  const password = passwordPair('nu');
  const roles = roleBoxes('nu-role');
  const scope = estateBoxes('nu-estate');
  const error = errorLine();
  const form = h('form', {class: 'panel user-form', novalidate: true, 'aria-labelledby': 'nu-h'},
    h('h2', {id: 'nu-h'}, t('users.create')),
    h('div', {class: 'form-grid'}, field(t('users.username'), username, {required: true, hint: t('users.usernameHint')}),
      field(t('users.displayName'), display, {required: true}), ...password.fields),
    h('fieldset', {class: 'plain'}, h('legend', {}, t('users.roles')), roles),
    h('fieldset', {class: 'plain'}, h('legend', {}, t('users.estates')), scope),
    error.el, h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'btn btn-primary'}, t('users.createSubmit'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    if (!/^[A-Za-z0-9_.@-]+$/.test(username.value.trim())) { error.show(t('users.usernameBad')); username.focus(); return; }
    if (!display.value.trim()) { error.show(t('users.needDisplay')); display.focus(); return; }
    const bad = password.check();
    if (bad) { error.show(bad); return; }
    const chosen = checkedRoles(roles);
    if (!chosen.length) { error.show(t('users.needRole')); return; }
    const where = checkedEstates(scope);
    if (where && !where.length) { error.show(t('users.needEstate')); return; }
    try {
      await post('/api/users', {username: username.value.trim(), display_name: display.value.trim(), password: password.value(),
        roles: chosen, estates: where});
      done(t('users.created', {name: display.value.trim()}), reload);
    } catch (err) { error.show(err); }
  });
  return form;
}

/** The editor of one user, opened under their row: roles, password, active, sign out everywhere. */
function editor(user, me, reload) {
  const error = errorLine();
  const roles = roleBoxes(`eu-${user.id}-role`, user.roles);
  const saveRoles = h('button', {type: 'button', class: 'btn btn-primary', 'data-action': 'save-roles'}, t('users.saveRoles'));
  saveRoles.addEventListener('click', async () => {
    error.clear();
    const chosen = checkedRoles(roles);
    if (!chosen.length) { error.show(t('users.needRole')); return; }
    if (user.id === me.id && !chosen.includes('admin')) { error.show(t('users.keepOwnAdmin')); return; }
    try {
      await patch(`/api/users/${user.id}`, {roles: chosen});
      done(t('users.rolesSaved', {name: user.display_name}), reload);
    } catch (err) { error.show(err); }
  });
  const scope = estateBoxes(`eu-${user.id}-estate`, user.estates);
  const saveEstates = h('button', {type: 'button', class: 'btn btn-primary', 'data-action': 'save-estates'}, t('users.saveEstates'));
  saveEstates.addEventListener('click', async () => {
    error.clear();
    const where = checkedEstates(scope);
    if (where && !where.length) { error.show(t('users.needEstate')); return; }
    try {
      await patch(`/api/users/${user.id}`, where ? {estates: where} : {whole_organisation: true});
      done(t('users.estatesSaved', {name: user.display_name}), reload);
    } catch (err) { error.show(err); }
  });
  const password = passwordPair(`eu-${user.id}`);
  const setPassword = h('button', {type: 'button', class: 'btn', 'data-action': 'set-password'}, t('users.setPassword'));
  setPassword.addEventListener('click', async () => {
    error.clear();
    const bad = password.check();
    if (bad) { error.show(bad); return; }
    try {
      await patch(`/api/users/${user.id}`, {password: password.value()});
      done(t('users.passwordSet', {name: user.display_name}), reload);
    } catch (err) { error.show(err); }
  });
  const active = h('button', {type: 'button', class: user.active ? 'btn btn-danger' : 'btn', 'data-action': user.active ? 'deactivate' : 'activate',
    disabled: user.id === me.id}, user.active ? t('users.deactivate') : t('users.activate'));
  active.addEventListener('click', async () => {
    error.clear();
    if (user.active && !confirm(t('users.deactivateConfirm', {name: user.display_name}))) return;
    try {
      await patch(`/api/users/${user.id}`, {active: !user.active});
      done(user.active ? t('users.deactivated', {name: user.display_name}) : t('users.activated', {name: user.display_name}), reload);
    } catch (err) { error.show(err); }
  });
  const signOut = h('button', {type: 'button', class: 'btn', 'data-action': 'revoke-tokens'}, t('users.signOutEverywhere'));
  signOut.addEventListener('click', async () => {
    error.clear();
    try {
      const result = await post(`/api/users/${user.id}/revoke-tokens`);
      done(t('users.signedOut', {name: user.display_name, n: fmtNum(result.revoked, 0)}), reload);
    } catch (err) { error.show(err); }
  });
  return h('div', {class: 'user-editor', 'data-editor': user.id},
    h('fieldset', {class: 'plain'}, h('legend', {}, t('users.roles')), roles, h('div', {class: 'actions'}, saveRoles)),
    h('fieldset', {class: 'plain'}, h('legend', {}, t('users.estates')), scope, h('div', {class: 'actions'}, saveEstates)),
    h('fieldset', {class: 'plain'}, h('legend', {}, t('users.newPassword')), h('div', {class: 'form-grid'}, password.fields),
      h('div', {class: 'actions'}, setPassword)),
    h('div', {class: 'actions'}, active, signOut),
    user.id === me.id ? h('p', {class: 'muted'}, t('users.notSelf')) : null,
    error.el);
}

function usersTable(users, me, reload) {
  const rows = [];
  for (const user of users) {
    const toggle = h('button', {type: 'button', class: 'btn btn-quiet', 'aria-expanded': 'false', 'data-action': 'edit',
      'aria-label': t('users.editLabel', {name: user.display_name})}, t('users.edit'));
    const editRow = h('tr', {class: 'editor-row', hidden: true}, h('td', {colspan: 7}));
    toggle.addEventListener('click', () => {
      const open = toggle.getAttribute('aria-expanded') === 'true';
      toggle.setAttribute('aria-expanded', String(!open));
      editRow.hidden = open;
      editRow.firstChild.replaceChildren(open ? '' : editor(user, me, reload));
    });
    const locked = user.locked_until && new Date(user.locked_until).getTime() > Date.now();
    rows.push(h('tr', {'data-user-id': user.id, 'data-username': user.username, class: user.active ? '' : 'is-inactive'},
      h('td', {}, h('strong', {}, user.display_name)),
      h('td', {}, h('code', {}, user.username)),
      h('td', {}, roleChips(user.roles)),
      h('td', {}, estateChips(user)),
      h('td', {}, user.active ? h('span', {class: 'chip req-approved'}, t('users.active')) : h('span', {class: 'chip req-cancelled'}, t('users.inactive')),
        locked ? h('span', {class: 'chip req-rejected'}, t('users.lockedUntil', {time: when(user.locked_until, true)})) : null),
      h('td', {}, toggle)), editRow);
  }
  return h('div', {class: 'table-wrap', tabindex: '0'}, h('table', {class: 'users-table'},
    h('thead', {}, h('tr', {}, ['users.displayName', 'users.username', 'users.roles', 'users.estates', 'users.status', 'users.actions']
      .map((k) => h('th', {scope: 'col'}, t(k))))),
    h('tbody', {}, rows)));
}

function deputyState(row, now = Date.now()) {
  if (new Date(row.valid_from).getTime() > now) return 'future';
  if (row.valid_until && new Date(row.valid_until).getTime() <= now) return 'ended';
  return 'active';
}

function deputiesSection(users, deputies, reload) {
  const name = (id) => users.find((u) => u.id === id)?.display_name || t('people.user', {id});
  const error = errorLine();
  const principals = users.filter((u) => u.active && u.roles.some((r) => DEPUTISABLE.includes(r)));
  const principal = select('dp-principal', [['', t('approvals.pickPerson')], ...principals.map((u) => [String(u.id), u.display_name])]);
  const role = select('dp-role', [['', t('users.pickRole')]]);
  const fillRoles = () => {
    const user = users.find((u) => String(u.id) === principal.value);
    role.replaceChildren(...[['', t('users.pickRole')], ...(user ? user.roles.filter((r) => DEPUTISABLE.includes(r)) : [])
      .map((r) => [r, t(`role.${r}`)])].map(([v, text]) => h('option', {value: v}, text)));
    if (user) role.selectedIndex = Math.min(1, role.options.length - 1);
  };
  principal.addEventListener('change', fillRoles);
  const deputy = select('dp-deputy', [['', t('approvals.pickPerson')], ...users.filter((u) => u.active).map((u) => [String(u.id), u.display_name])]);
  const from = h('input', {type: 'datetime-local', id: 'dp-from', value: toLocalInput(new Date())});
  const until = h('input', {type: 'datetime-local', id: 'dp-until', value: toLocalInput(new Date(Date.now() + 7 * 86400000))});
  const add = h('button', {type: 'submit', class: 'btn btn-primary'}, t('users.addDeputy'));
  const form = h('form', {class: 'deputy-form', novalidate: true},
    h('div', {class: 'form-grid'}, field(t('users.principal'), principal, {required: true}), field(t('users.deputyRole'), role, {required: true}),
      field(t('users.deputy'), deputy, {required: true}), field(t('users.from'), from, {required: true, hint: t('approvals.siteTime')}),
      field(t('users.until'), until, {hint: t('users.untilHint')})),
    error.el, h('div', {class: 'actions'}, add));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    if (!principal.value || !role.value || !deputy.value) { error.show(t('users.needDeputyFields')); return; }
    if (principal.value === deputy.value) { error.show(t('why.selfDeputy')); deputy.focus(); return; }
    const start = fromLocalInput(from.value);
    const end = fromLocalInput(until.value);
    if (!start) { error.show(t('users.needFrom')); from.focus(); return; }
    if (end && end <= start) { error.show(t('why.endAfterStart')); until.focus(); return; }
    try {
      await post('/api/users/deputies', {principal_id: Number(principal.value), deputy_id: Number(deputy.value), role: role.value,
        valid_from: start.toISOString(), valid_until: end ? end.toISOString() : null});
      done(t('users.deputyAdded', {deputy: name(Number(deputy.value)), principal: name(Number(principal.value))}), reload);
    } catch (err) { error.show(err); }
  });
  const rows = deputies.map((row) => {
    const state = deputyState(row);
    const end = state !== 'ended' ? h('button', {type: 'button', class: 'btn btn-quiet', 'data-action': 'end-deputy'}, t('users.endDeputy')) : null;
    if (end) {
      end.addEventListener('click', async () => {
        try {
          await post(`/api/users/deputies/${row.id}/end`);
          done(t('users.deputyEnded'), reload);
        } catch (err) { error.show(err); }
      });
    }
    return h('tr', {'data-deputy-id': row.id, 'data-state': state},
      h('td', {}, name(row.principal_id)), h('td', {}, t(`role.${row.role}`)), h('td', {}, name(row.deputy_id)),
      h('td', {}, when(row.valid_from, true)), h('td', {}, row.valid_until ? when(row.valid_until, true) : t('users.open')),
      h('td', {}, h('span', {class: ['chip', `dep-${state}`]}, t(`users.dep.${state}`))), h('td', {}, end));
  });
  return h('section', {class: 'panel', 'aria-labelledby': 'dep-h'},
    h('h2', {id: 'dep-h'}, t('users.deputies')), h('p', {class: 'muted'}, t('users.deputiesExplain')),
    rows.length ? h('div', {class: 'table-wrap', tabindex: '0'}, h('table', {class: 'deputies-table'},
      h('thead', {}, h('tr', {}, ['users.principal', 'users.deputyRole', 'users.deputy', 'users.from', 'users.until', 'task.state', 'users.actions']
        .map((k) => h('th', {scope: 'col'}, t(k))))),
      h('tbody', {}, rows))) : h('p', {class: 'empty-state'}, t('users.noDeputies')),
    h('h3', {}, t('users.addDeputy')), form);
}

function failuresSection(users, failures, reload) {
  const error = errorLine();
  const rows = failures.map((row) => {
    const user = users.find((u) => u.username === row.account);
    const blocked = row.blocked_until && new Date(row.blocked_until).getTime() > Date.now();
    let action = h('span', {class: 'muted'}, t('users.unknownAccount'));
    if (user) {
      action = h('button', {type: 'button', class: 'btn', 'data-action': 'unlock'}, t('users.unlock'));
      action.addEventListener('click', async () => {
        try {
          await patch(`/api/users/${user.id}`, {unlock: true});
          done(t('users.unlocked', {name: user.display_name}), reload);
        } catch (err) { error.show(err); }
      });
    }
    return h('tr', {'data-account': row.account, class: blocked ? 'is-blocked' : ''},
      h('td', {}, h('code', {}, row.account), user ? h('span', {class: 'muted'}, ` ${user.display_name}`) : null),
      h('td', {}, h('code', {}, row.address)), h('td', {}, fmtNum(row.failures, 0)),
      h('td', {}, when(row.first_failed_at, true)), h('td', {}, when(row.last_failed_at, true)),
      h('td', {}, blocked ? h('span', {class: 'chip req-rejected'}, when(row.blocked_until, true)) : '—'),
      h('td', {}, action));
  });
  return h('section', {class: 'panel', 'aria-labelledby': 'fail-h'},
    h('h2', {id: 'fail-h'}, t('users.failures'), ' ', h('span', {class: 'count'}, fmtNum(failures.length, 0))),
    h('p', {class: 'muted'}, t('users.failuresExplain')), error.el,
    rows.length ? h('div', {class: 'table-wrap', tabindex: '0'}, h('table', {class: 'failures-table'},
      h('thead', {}, h('tr', {}, ['users.account', 'users.address', 'users.failureCount', 'users.firstFailed', 'users.lastFailed',
        'users.blockedUntil', 'users.actions'].map((k) => h('th', {scope: 'col'}, t(k))))),
      h('tbody', {}, rows))) : h('p', {class: 'empty-state'}, t('users.noFailures')));
}

export async function usersPage(main, ctx) {
  mount(main, pageHeader(t('nav.users')), loading());
  const body = h('div', {class: 'users-body'});
  const newButton = h('button', {type: 'button', class: 'btn btn-primary', id: 'new-user', 'aria-expanded': 'false'}, t('users.create'));
  const createSlot = h('div', {});
  const reload = async () => {
    let users;
    let deputies;
    let failures;
    let known;
    try {
      [users, deputies, failures, known] = await Promise.all([get('/api/users'), get('/api/users/deputies'),
        get('/api/users/sign-in-failures'), get('/api/estates')]);
    } catch (err) {
      body.replaceChildren(h('p', {class: 'error', role: 'alert'}, problemText(err)));
      return;
    }
    estates = known.data;
    const list = users.data.slice().sort((a, b) => Number(b.active) - Number(a.active) || a.display_name.localeCompare(b.display_name, 'zh-CN'));
    body.replaceChildren(
      h('section', {class: 'panel', 'aria-labelledby': 'users-h'},
        h('h2', {id: 'users-h'}, t('users.list'), ' ', h('span', {class: 'count'}, fmtNum(users.count, 0))),
        usersTable(list, ctx.me, reload)),
      deputiesSection(list, deputies.data, reload),
      failuresSection(list, failures.data, reload));
  };
  newButton.addEventListener('click', () => {
    const open = newButton.getAttribute('aria-expanded') === 'true';
    newButton.setAttribute('aria-expanded', String(!open));
    createSlot.replaceChildren(open ? '' : createForm(() => {
      createSlot.replaceChildren();
      newButton.setAttribute('aria-expanded', 'false');
      return reload();
    }));
    if (!open) createSlot.querySelector('input')?.focus();
  });
  mount(main, pageHeader(t('nav.users'), h('div', {class: 'head-tools'}, newButton,
    h('a', {href: '/docs', class: 'btn', id: 'api-docs'}, t('users.apiDocs')))),
  h('p', {class: 'muted'}, t('users.explain')), createSlot, body);
  await reload();
  return () => {};
}


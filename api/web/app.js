// PumpWatch web UI: sign-in, the header (navigation by role, live / network / sync state, language),
// hash routes to the pages, the service worker for offline use.

import {NetworkError, get, getCached, onUnauthorized, post, setCacheUser} from './api.js';
import {alarmPage} from './alarmconsole.js';
import {approvalsPage, exceptionsPage} from './approvals.js';
import {auditPage} from './audit.js';
import {boardPage, roomPage} from './board.js';
import {errorText, pageHeader} from './common.js';
import {chosenEstate, rememberEstate} from './estatepick.js';
import {announce, h, mount, toast} from './dom.js';
import {lang, onLangChange, setLang, setTimeZone, t} from './i18n.js';
import {handoverPage} from './handover.js';
import {live} from './live.js';
import {alarmsPage, escalationsPage, extraPage, labelsPage, overviewPage, verifyPage} from './manage.js';
import {monthlyPage} from './monthly.js';
import {centreEstatePage, centrePage, centreRoomPage} from './overview.js';
import {onOutboxChange, setOutboxUser, startSyncing, summary} from './outbox.js';
import {portfolioPage} from './portfolio.js';
import {bottomNav, mePage} from './phonenav.js';
import {calendarPage, plansPage} from './plans.js';
import {cache, kv} from './store.js';
import {taskBoardPage} from './taskboard.js';
import {reportPage, syncPage, taskPage, tasksPage} from './tasks.js';
import {usersPage} from './users.js';

const ALL = ['operator', 'technician', 'supervisor', 'director', 'admin'];
const WATCHERS = ['operator', 'supervisor', 'director', 'admin'];
const LEADERS = ['supervisor', 'director', 'admin'];
const MANAGERS = ['supervisor', 'admin'];

const NAV = [
  // `multi`: only where the user's scope holds several estates (GET /api/estates).
  {key: 'centre', href: '#/centre', roles: WATCHERS, multi: true},
  {key: 'board', href: '#/board', roles: WATCHERS},
  {key: 'overview', href: '#/overview', roles: LEADERS},
  {key: 'taskboard', href: '#/taskboard', roles: LEADERS},
  {key: 'tasks', href: '#/tasks', roles: ['technician', 'admin']},
  {key: 'verify', href: '#/verify', roles: MANAGERS},
  {key: 'escalations', href: '#/escalations', roles: LEADERS},
  {key: 'alarms', href: '#/alarms', roles: ALL},
  {key: 'handover', href: '#/handover', roles: ALL},
  // `more`: for these roles the entry sits in the header's "more" menu (a leader's row stays one line).
  {key: 'report', href: '#/report', roles: ALL, more: LEADERS},
  {key: 'labels', href: '#/labels', roles: ['technician', ...MANAGERS], more: LEADERS},
  {key: 'audit', href: '#/audit', roles: LEADERS, more: LEADERS},
  {key: 'portfolio', href: '#/portfolio', roles: LEADERS, more: LEADERS, multi: true},
  {key: 'exceptions', href: '#/exceptions', roles: ALL, more: ALL},
  {key: 'users', href: '#/users', roles: ['admin']},
  {key: 'docs', href: '/docs', roles: ['admin'], more: ALL},
];

// Pages for API routes that only some servers have: an entry shows only when its route answers.
function month() {
  const now = new Date();
  return `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}`;
}
const EXTRAS = [
  {key: 'approvals', href: '#/approvals', paths: () => ['/api/access-requests']},
  {key: 'plans', href: '#/plans', paths: () => ['/api/plans']},
  {key: 'calendar', href: '#/calendar', more: ALL, paths: () => ['/api/calendar']},
  {key: 'reports', href: '#/monthly', paths: () => ['/api/reports', `/api/reports/monthly/${month()}`]},
];

const ROUTES = [
  [/^\/board(?:\?(.*))?$/, boardPage, WATCHERS],
  [/^\/centre(?:\?(.*))?$/, centrePage, WATCHERS],
  [/^\/centre\/([^/?]+)$/, centreEstatePage, WATCHERS],
  [/^\/centre\/([^/?]+)\/([^/?]+)(?:\?(.*))?$/, centreRoomPage, WATCHERS],
  [/^\/room\/([^/?]+)(?:\?(.*))?$/, roomPage, WATCHERS],
  [/^\/overview$/, overviewPage, LEADERS],
  [/^\/alarms(?:\?(.*))?$/, alarmsPage, ALL],
  [/^\/tasks$/, tasksPage, ALL],
  [/^\/task\/(\d+)$/, taskPage, ALL],
  [/^\/report(?:\/([^/]+))?$/, reportPage, ALL],
  [/^\/verify$/, verifyPage, MANAGERS],
  [/^\/escalations$/, escalationsPage, LEADERS],
  [/^\/labels$/, labelsPage, ALL],
  [/^\/sync$/, syncPage, ALL],
  [/^\/audit(?:\?(.*))?$/, auditPage, LEADERS],
  [/^\/more\/(\w+)$/, extraPage, ALL],
  [/^\/alarm\/(\d+)$/, alarmPage, ALL],
  [/^\/me$/, mePage, ALL],
  [/^\/taskboard(?:\?(.*))?$/, taskBoardPage, LEADERS],
  [/^\/approvals(?:\?(.*))?$/, approvalsPage, ALL],
  [/^\/exceptions(?:\?(.*))?$/, exceptionsPage, ALL],
  [/^\/handover(?:\/(new|\d+))?(?:\?(.*))?$/, handoverPage, ALL],
  [/^\/users$/, usersPage, ['admin']],
  [/^\/plans(?:\?(.*))?$/, plansPage, ALL],
  [/^\/calendar(?:\?(.*))?$/, calendarPage, ALL],
  [/^\/portfolio(?:\?(.*))?$/, portfolioPage, LEADERS],
  [/^\/monthly(?:\/(\d{4}-\d{2}))?(?:\?(.*))?$/, monthlyPage, LEADERS],
];

const ctx = {
  me: null,
  signOut: () => signOut(),
  site: {rooms: []},
  estates: [], // the estates in the user's scope
  siteEstate: '', // with several: the estate whose site the pages of one estate (board, rooms) show
  sensors: new Map(),
  people: new Map(),
  equipment: new Map(),
  rooms: new Map(),
  placeOf: new Map(),
  // Other estates' names, for rows of several estates: estate id -> {rooms, equipment, sensors} (Maps by id).
  names: new Map(),
  extras: {},
  can(...roles) { return Boolean(this.me) && roles.some((r) => this.me.roles.includes(r)); },
  roomOf(id) { return this.placeOf.get(id) || null; },
  /** Show `id`'s site on the pages of one estate (kept on this device); nothing for an unknown id. */
  async useEstate(id) {
    if (!id || id === this.siteEstate || !this.estates.some((e) => e.id === id)) return;
    rememberEstate(id);
    await loadSite();
  },
  /**
   * The names of `estateIds`' rooms, equipment and sensors in `ctx.names`, for the rows of several estates:
   * each estate not known yet and not the loaded site's is asked for once. A failed fetch is asked again on
   * the next call; meanwhile its rooms are named from ctx.estates and the rest by id.
   */
  async loadNames(estateIds) {
    const wanted = [...new Set(estateIds)].filter((id) => id && id !== this.site.id && !this.names.has(id));
    await Promise.all(wanted.map((id) => namesOf(id)));
  },
};

const namesLoading = new Map(); // estate id -> its fetch under way, so that pages refreshing meanwhile share it

function namesOf(estate) {
  if (!namesLoading.has(estate)) {
    const q = `?estate=${encodeURIComponent(estate)}`;
    const loading = Promise.all([getCached(`/api/site${q}`), getCached(`/api/sensors${q}`)])
      .then(([site, sensors]) => {
        const names = {rooms: new Map(), equipment: new Map(), sensors: new Map()};
        for (const room of site.data.rooms) {
          names.rooms.set(room.id, room);
          for (const item of room.equipment) names.equipment.set(item.id, item);
        }
        for (const sensor of sensors.data.data) names.sensors.set(sensor.id, sensor);
        ctx.names.set(estate, names);
      })
      .catch(() => {}) // names by id (rooms from ctx.estates) until the next try
      .finally(() => namesLoading.delete(estate));
    namesLoading.set(estate, loading);
  }
  return namesLoading.get(estate);
}

const main = document.getElementById('main');
const top = document.getElementById('top');
let cleanup = null;
let routeToken = 0;
let afterLogin = null;
let firstRender = true;
let outboxState = {pending: 0, conflicts: 0, failed: 0};

function landing() {
  if (ctx.can('operator') && ctx.estates.length > 1) return '#/centre';
  if (ctx.can('operator', 'admin')) return '#/board';
  if (ctx.can('supervisor')) return '#/verify';
  if (ctx.can('director')) return '#/overview';
  if (ctx.can('technician')) return '#/tasks';
  return '#/alarms';
}

// --- header -------------------------------------------------------------------------------------

function liveText(status) {
  return {live: t('live.pill.live'), connecting: t('live.pill.connecting'), reconnecting: t('live.pill.reconnecting'),
    stale: t('live.pill.stale'), down: t('live.pill.down')}[status] || '';
}

function syncPill() {
  const {pending, conflicts, failed} = outboxState;
  const problems = conflicts + failed;
  if (!ctx.me || (!ctx.can('technician') && !pending && !problems)) return null;
  const state = problems ? 'conflict' : pending ? 'pending' : 'synced';
  const text = problems ? t('sync.pill.conflict', {n: problems}) : pending ? t('sync.pill.pending', {n: pending}) : t('sync.pill.synced');
  return h('a', {href: '#/sync', id: 'sync-status', class: ['pill', `pill-${state}`], 'data-sync': state,
    'data-pending': pending, 'data-conflicts': problems}, text);
}

function renderHeader() {
  const current = location.hash.replace(/^#/, '');
  const toggle = h('button', {type: 'button', id: 'lang-toggle', class: 'btn btn-quiet', lang: lang() === 'zh' ? 'en' : 'zh-CN',
    'aria-label': t('lang.switchLabel')}, t('lang.other'));
  toggle.addEventListener('click', () => setLang(lang() === 'zh' ? 'en' : 'zh'));
  const entries = ctx.me ? [
    ...NAV.filter((n) => ctx.can(...n.roles) && (!n.multi || ctx.estates.length > 1)),
    ...EXTRAS.filter((e) => ctx.extras[e.key]).map((e) => ({key: e.key, href: e.href || `#/more/${e.key}`, more: e.more})),
  ] : [];
  const link = (n) => h('a', {href: n.href, 'data-nav': n.key,
    'aria-current': current.startsWith(n.href.slice(1)) ? 'page' : undefined}, t(`nav.${n.key}`));
  const inMore = (n) => Boolean(n.more) && ctx.can(...n.more);
  const moreEntries = entries.filter(inMore);
  const moreMenu = moreEntries.length ? h('li', {class: 'nav-more'}, h('details', {id: 'nav-more'},
    h('summary', {'data-nav-more': ''}, t('nav.more')),
    h('ul', {class: 'nav-more-list'}, moreEntries.map((n) => h('li', {}, link(n)))))) : null;
  const nav = entries.length ? h('nav', {class: 'nav', 'aria-label': t('nav.label')},
    h('ul', {}, entries.filter((n) => !inMore(n)).map((n) => h('li', {}, link(n))), moreMenu)) : null;
  const user = ctx.me ? h('span', {class: 'user'},
    h('span', {class: 'user-name', 'data-user': ctx.me.username}, ctx.me.display_name || ctx.me.username),
    h('span', {class: 'user-roles'}, ctx.me.roles.map((r) => t(`role.${r}`)).join(' · '))) : null;
  const logout = ctx.me ? h('button', {type: 'button', class: 'btn btn-quiet', id: 'logout'}, t('login.logout')) : null;
  if (logout) logout.addEventListener('click', signOut);
  const liveEl = h('span', {id: 'live-status', class: ['pill', `pill-live-${live.status}`], 'data-live': live.status,
    hidden: live.status === 'idle' || !ctx.me}, liveText(live.status));
  const netEl = h('span', {id: 'net-status', class: 'pill pill-offline', hidden: navigator.onLine}, t('net.offline'));
  ctx.navEntries = entries;
  document.getElementById('bottom-nav')?.remove();
  if (ctx.me) document.body.append(bottomNav(ctx, entries, outboxState));
  document.body.classList.toggle('has-bottom-nav', Boolean(ctx.me));
  mount(top,
    h('div', {class: 'top-row'},
      h('a', {class: 'brand', href: ctx.me ? landing() : '#/login'},
        h('img', {src: '/static/icons/icon.svg', alt: '', width: 28, height: 28}),
        h('span', {}, t('app.name'))),
      h('div', {class: 'top-tools'}, netEl, liveEl, syncPill(), user, toggle, logout)),
    nav);
  document.title = t('app.title');
}

function updateNetBanner() {
  const banner = document.getElementById('netbanner');
  banner.replaceChildren(navigator.onLine ? '' : h('p', {class: 'net-banner', role: 'status'}, t('net.banner')));
  document.body.classList.toggle('is-offline', !navigator.onLine);
  renderHeader();
}

// --- session ------------------------------------------------------------------------------------

async function loadSite() {
  ctx.names = new Map(); // another user, or the estates changed: asked for again
  try {
    ctx.estates = (await getCached('/api/estates')).data.data;
  } catch { ctx.estates = []; }
  // With several estates in scope the pages of one estate (board, rooms) show the chosen one (the address's
  // `?estate=`, else the one kept on this device, else the first: ctx.siteEstate); the centre shows them all.
  ctx.siteEstate = chosenEstate(ctx, null, {all: false});
  const one = ctx.siteEstate ? `?estate=${encodeURIComponent(ctx.siteEstate)}` : '';
  try {
    const [site, sensors] = await Promise.all([getCached(`/api/site${one}`), getCached(`/api/sensors${one}`)]);
    ctx.site = site.data;
    ctx.sensors = new Map(sensors.data.data.map((s) => [s.id, s]));
  } catch (err) {
    ctx.site = {rooms: []};
    toast(errorText(err), 'error');
  }
  try {
    const people = await getCached('/api/people');
    ctx.people = new Map(people.data.data.map((p) => [p.id, p]));
  } catch { ctx.people = new Map(); } // names fall back to "user #id"
  setTimeZone(ctx.site.timezone);
  ctx.rooms = new Map(ctx.site.rooms.map((r) => [r.id, r]));
  ctx.equipment = new Map();
  ctx.placeOf = new Map();
  for (const room of ctx.site.rooms) {
    ctx.placeOf.set(room.id, room);
    for (const item of room.equipment) {
      ctx.equipment.set(item.id, item);
      ctx.placeOf.set(item.id, room);
    }
  }
}

async function probeExtras() {
  const found = {};
  await Promise.all(EXTRAS.map(async (extra) => {
    for (const path of extra.paths()) {
      try {
        const res = await fetch(path, {headers: {Accept: 'application/json'}, credentials: 'same-origin', cache: 'no-store'});
        if (res.ok || res.status === 422) { // 404: no such route here; 401/403: not for this user
          found[extra.key] = {path, monthly: path.includes('/monthly/')};
          return;
        }
      } catch { return; } // offline: leave the entry out
    }
  }));
  ctx.extras = found;
  document.body.dataset.extras = Object.keys(found).sort().join(' ') || 'none';
  renderHeader();
}

async function signedIn(user, {boot = false} = {}) {
  ctx.me = user;
  kv.set('me', user).catch(() => {});
  setCacheUser(user.username);
  setOutboxUser(user.username);
  await loadSite();
  outboxState = await summary();
  renderHeader();
  probeExtras();
  startSyncing();
  const next = new URLSearchParams(location.search).get('next');
  if (next && /^\/labels?(\/[\w.-]+|\?room=[\w.%-]+)?$/.test(next)) {
    location.assign(next);
    return;
  }
  if (!boot || !location.hash || location.hash === '#/login' || location.hash === '#/') {
    const target = afterLogin && afterLogin !== '/login' && afterLogin !== '/' ? `#${afterLogin}` : landing();
    afterLogin = null;
    if (location.hash === target) route();
    else location.hash = target;
  } else {
    route();
  }
}

async function signOut() {
  const {pending, conflicts} = await summary();
  if ((pending || conflicts) && !confirm(t('login.logoutPending', {n: pending + conflicts}))) return;
  try { await post('/api/auth/logout'); } catch { /* the session may be gone already */ }
  ctx.me = null;
  live.stop();
  await kv.del('me').catch(() => {});
  await cache.clear().catch(() => {});
  renderHeader();
  location.hash = '#/login';
}

function loginPage(view) {
  const user = h('input', {id: 'login-user', name: 'username', autocomplete: 'username', autocapitalize: 'none',
    spellcheck: 'false', required: true});
  const pass = h('input', {id: 'login-pass', name: 'password', type: 'password', autocomplete: 'current-password', required: true});
  const error = h('p', {class: 'field-error', role: 'alert', id: 'login-error'});
  const submit = h('button', {type: 'submit', class: 'btn btn-primary btn-wide'}, t('login.submit'));
  const form = h('form', {class: 'panel login', novalidate: true, 'aria-labelledby': 'page-title'},
    h('div', {class: 'field'}, h('label', {for: 'login-user'}, t('login.user')), user),
    h('div', {class: 'field'}, h('label', {for: 'login-pass'}, t('login.pass')), pass),
    error, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    if (!user.value.trim() || !pass.value) { error.textContent = t('login.needBoth'); return; }
    submit.disabled = true;
    try {
      const session = await post('/api/auth/login', {username: user.value.trim(), password: pass.value});
      await signedIn(session.user);
    } catch (err) {
      submit.disabled = false;
      const status = err.status;
      error.textContent = status === 401 ? t('login.bad')
        : status === 429 ? t('login.tooMany') : err instanceof NetworkError ? t('login.offline') : errorText(err);
      pass.select();
    }
  });
  mount(view, h('div', {class: 'login-wrap'}, pageHeader(t('login.title')), h('p', {class: 'muted'}, t('login.intro')), form));
  if (!firstRender || !document.activeElement || document.activeElement === document.body) user.focus();
  return () => {};
}

// --- routing ------------------------------------------------------------------------------------

async function route() {
  const token = ++routeToken;
  if (cleanup) {
    try { cleanup(); } catch (err) { console.error(err); }
    cleanup = null;
  }
  const path = location.hash.replace(/^#/, '') || '/';
  const view = h('div', {class: 'view'});
  main.replaceChildren(view);
  if (!ctx.me) {
    if (path !== '/login') {
      afterLogin = path;
      history.replaceState(null, '', `${location.pathname}${location.search}#/login`);
    }
    cleanup = loginPage(view);
    renderHeader();
    firstRender = false;
    return;
  }
  if (path === '/' || path === '/login') {
    location.replace(landing());
    return;
  }
  renderHeader();
  for (const [pattern, page, roles] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    if (!ctx.can(...roles)) {
      mount(view, pageHeader(t('common.forbidden')), h('p', {}, h('a', {href: landing()}, t('common.home'))));
      break;
    }
    let done;
    try {
      done = await page(view, ctx, ...match.slice(1));
    } catch (err) {
      console.error(err);
      mount(view, pageHeader(t('common.error')), h('p', {class: 'error', role: 'alert'}, errorText(err)));
    }
    if (token !== routeToken) {
      if (typeof done === 'function') done(); // the user went elsewhere meanwhile
      return;
    }
    cleanup = typeof done === 'function' ? done : null;
    break;
  }
  if (!view.childNodes.length) mount(view, pageHeader(t('common.notFound')), h('p', {}, h('a', {href: landing()}, t('common.home'))));
  if (!firstRender) view.querySelector('#page-title')?.focus({preventScroll: false});
  firstRender = false;
}

// --- start --------------------------------------------------------------------------------------

function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  let url = '/sw.js';
  if (window.trustedTypes && window.trustedTypes.createPolicy) {
    const policy = window.trustedTypes.createPolicy('pumpwatch', {
      createScriptURL: (value) => {
        if (value === '/sw.js') return value;
        throw new TypeError(`script URL ${value} is not allowed`);
      },
    });
    url = policy.createScriptURL('/sw.js');
  }
  navigator.serviceWorker.register(url, {scope: '/'}).then(() => {
    document.body.dataset.sw = 'registered';
  }).catch((err) => console.warn('service worker not registered', err));
}

async function boot() {
  setLang(lang());
  document.getElementById('skip').addEventListener('click', (event) => {
    event.preventDefault();
    (main.querySelector('#page-title') || main).focus();
  });
  registerServiceWorker();
  renderHeader();
  window.addEventListener('hashchange', route);
  window.addEventListener('online', updateNetBanner);
  window.addEventListener('offline', updateNetBanner);
  updateNetBanner();
  onLangChange(() => {
    document.getElementById('skip').textContent = t('common.skip');
    route();
  });
  document.getElementById('skip').textContent = t('common.skip');
  live.on('status', (status) => {
    const el = document.getElementById('live-status');
    if (!el || el.dataset.live === status) return;
    el.dataset.live = status;
    el.className = `pill pill-live-${status}`;
    el.textContent = liveText(status);
    el.hidden = status === 'idle' || !ctx.me;
    if (status === 'down' || status === 'stale') announce(liveText(status));
  });
  // The phone's bottom bar shows the outbox's count. It is drawn again only when that changed, and the link
  // that had the keyboard's focus keeps it: a sync every 20 s took a keyboard user's place away.
  const refreshBottomNav = () => {
    const old = document.getElementById('bottom-nav');
    if (!old) return;
    const fresh = bottomNav(ctx, ctx.navEntries || [], outboxState);
    if (fresh.outerHTML === old.outerHTML) return;
    const focused = old.contains(document.activeElement) ? document.activeElement.dataset.bottomNav : null;
    old.replaceWith(fresh);
    if (focused) fresh.querySelector(`[data-bottom-nav="${focused}"]`)?.focus();
  };
  onOutboxChange((sum) => {
    const before = outboxState;
    outboxState = sum;
    const old = document.getElementById('sync-status');
    const fresh = syncPill();
    if (old && fresh) {
      old.replaceWith(fresh);
      refreshBottomNav();
    } else renderHeader();
    if (sum.conflicts + sum.failed > before.conflicts + before.failed) toast(t('sync.conflictToast'), 'error');
    if (sum.synced.length && !sum.pending && before.pending) announce(t('sync.pill.synced'));
  });
  onUnauthorized(() => {
    if (!ctx.me) return;
    ctx.me = null;
    live.stop();
    kv.del('me').catch(() => {});
    toast(t('login.expired'), 'error');
    route();
  });
  let me = null;
  try {
    me = await get('/api/auth/me');
  } catch (err) {
    if (err instanceof NetworkError) me = await kv.get('me').catch(() => null); // offline: the last user of this device
  }
  if (me) await signedIn(me, {boot: true});
  else route();
}

boot();

// On phones a short bottom navigation replaces the header's row of links: four places for the role's
// daily work (a technician: tasks, scan, sync, me) and "me", which lists every other page, the language
// and signing out. Shown by CSS below 720 px; on a desktop the header's navigation stays.

import {h, mount} from './dom.js';
import {has, lang, setLang, t} from './i18n.js';

const MAIN = {
  technician: ['tasks', 'scan', 'sync'],
  operator: ['board', 'alarms', 'scan'],
};

function href(key) {
  return {scan: '#/report', sync: '#/sync', me: '#/me'}[key] || null;
}

/** The bottom bar for the signed-in user: `entries` are the header's ({key, href}), `outbox` its counts. */
export function bottomNav(ctx, entries, outbox) {
  const role = ['technician', 'operator'].find((r) => ctx.can(r) && !ctx.can('admin', 'supervisor', 'director'));
  // A monitoring-centre operator (several estates) starts from the centre; the scanner stays under "me".
  const centre = role === 'operator' && ctx.estates.length > 1;
  const keys = centre ? ['centre', 'board', 'alarms'] : role ? MAIN[role] : entries.slice(0, 3).map((e) => e.key);
  const current = location.hash.replace(/^#/, '');
  const items = [...keys, 'me'].map((key) => {
    const target = href(key) || entries.find((e) => e.key === key)?.href || `#/${key}`;
    const problems = outbox.conflicts + outbox.failed;
    const badge = key === 'sync' && (outbox.pending || problems)
      ? h('span', {class: ['badge', problems ? 'badge-bad' : 'badge-warn']}, String(outbox.pending + problems)) : null;
    return h('li', {}, h('a', {href: target, 'data-bottom-nav': key,
      'aria-current': current.startsWith(target.slice(1)) ? 'page' : undefined},
    h('span', {class: `bn-icon bn-${key}`, 'aria-hidden': 'true'}), h('span', {class: 'bn-text'}, t(has(`bottom.${key}`) ? `bottom.${key}` : `nav.${key}`)), badge));
  });
  return h('nav', {class: 'bottom-nav', id: 'bottom-nav', 'aria-label': t('bottom.label')}, h('ul', {}, items));
}

/** "Me": who is signed in, every page of the role, the language and signing out. */
export async function mePage(main, ctx) {
  const entries = ctx.navEntries || [];
  const other = lang() === 'zh' ? 'en' : 'zh';
  const switchLang = h('button', {type: 'button', class: 'btn', id: 'me-lang', lang: other === 'en' ? 'en' : 'zh-CN'},
    t('lang.other'));
  switchLang.addEventListener('click', () => setLang(other));
  const out = h('button', {type: 'button', class: 'btn btn-danger', id: 'me-logout'}, t('login.logout'));
  out.addEventListener('click', () => ctx.signOut && ctx.signOut());
  mount(main,
    h('div', {class: 'page-head'}, h('h1', {tabindex: '-1', id: 'page-title'}, t('me.title'))),
    h('section', {class: 'panel', 'aria-labelledby': 'me-who'},
      h('h2', {id: 'me-who'}, ctx.me.display_name || ctx.me.username),
      h('p', {class: 'muted'}, ctx.me.roles.map((r) => t(`role.${r}`)).join(' · '))),
    h('section', {class: 'panel', 'aria-labelledby': 'me-pages'},
      h('h2', {id: 'me-pages'}, t('me.pages')),
      h('ul', {class: 'me-links'}, [...entries, {key: 'sync', href: '#/sync'}].map((e) => h('li', {},
        h('a', {href: e.href, 'data-me-link': e.key}, t(`nav.${e.key}`)))))),
    h('div', {class: 'actions'}, switchLang, out));
  return () => {};
}

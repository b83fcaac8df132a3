// The audit trail (supervisor, director, admin): who changed what and when, filtered, paged and exported
// as CSV. Read-only: the API has no route that writes the trail.

import {get} from './api.js';
import {equipmentName, errorText, loading, pageHeader, personName, word} from './common.js';
import {h, mount} from './dom.js';
import {fmtDateTime, fmtNum, t} from './i18n.js';

const PAGE = 50;
const ENTITIES = ['task', 'alarm', 'attachment', 'access_request', 'change_request', 'exception', 'handover',
  'plan', 'report', 'user', 'deputy', 'api_token'];
const SHOWN_CHANGES = 6; // fields listed in a row; the rest are behind "details"

function errorBox(err) { return h('p', {class: 'error', role: 'alert'}, errorText(err)); }

/** A value of a before/after snapshot as short text. */
function valueText(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** What changed in one row: "field: before → after" for the first few fields, the whole row on request. */
function changes(entry) {
  const before = entry.before || {};
  const after = entry.after || {};
  const keys = [...new Set([...Object.keys(after), ...Object.keys(before)])];
  if (!keys.length) return h('span', {class: 'muted'}, '—');
  const list = h('ul', {class: 'audit-changes'}, keys.slice(0, SHOWN_CHANGES).map((key) => h('li', {},
    h('code', {}, key), ': ', key in before ? `${valueText(before[key])} → ` : '', valueText(after[key]))));
  const nested = [...Object.values(before), ...Object.values(after)].some((v) => v && typeof v === 'object');
  if (keys.length <= SHOWN_CHANGES && !nested) return list;
  // Long or nested rows (a checklist, a handover's lists) in full, on request.
  return [list, h('details', {}, h('summary', {}, t('audit.details', {n: fmtNum(keys.length, 0)})),
    h('pre', {class: 'audit-json'}, JSON.stringify({before: entry.before, after: entry.after}, null, 2)))];
}

function actorText(ctx, entry) {
  if (entry.actor === 'system') return t('audit.system');
  return entry.actor_name || personName(ctx, Number(entry.actor));
}

function auditTable(ctx, entries, caption) {
  return h('table', {class: 'audit generic'},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {},
      h('th', {scope: 'col'}, t('audit.when')), h('th', {scope: 'col'}, t('audit.who')),
      h('th', {scope: 'col'}, t('audit.what')), h('th', {scope: 'col'}, t('audit.action')),
      h('th', {scope: 'col'}, t('audit.changes')))),
    h('tbody', {}, entries.length ? entries.map((e) => h('tr', {'data-audit-id': e.id},
      h('td', {}, h('time', {datetime: e.ts}, fmtDateTime(e.ts))),
      h('td', {}, actorText(ctx, e)),
      h('td', {}, word('audit.entity', e.entity), ' #', e.entity_id),
      h('td', {}, word('audit.act', e.action)),
      h('td', {}, changes(e))))
      : h('tr', {}, h('td', {colspan: 5, class: 'empty'}, t('audit.none')))));
}

export async function auditPage(main, ctx) {
  const filters = {user: '', entity: '', entity_id: '', asset: '', since: '', until: ''};
  let offset = 0;
  const query = (extra = {}) => {
    const q = new URLSearchParams(extra);
    for (const [key, value] of Object.entries(filters)) {
      if (!value) continue;
      // The date inputs are days in this browser's time zone; the API wants instants.
      q.set(key, key === 'since' || key === 'until' ? new Date(`${value}T00:00`).toISOString() : value);
    }
    return q;
  };
  const field = (id, label, control, key) => {
    control.addEventListener('change', () => { filters[key] = control.value.trim(); offset = 0; render(); });
    return h('div', {class: 'field field-inline'}, h('label', {for: id}, label), control);
  };
  const select = (id, options) => h('select', {id}, h('option', {value: ''}, t('audit.any')),
    options.map(([value, text]) => h('option', {value}, text)));
  const people = [...ctx.people.values()].sort((a, b) => a.display_name.localeCompare(b.display_name));
  const form = h('form', {class: 'filters', 'aria-label': t('audit.filters')},
    field('a-user', t('audit.who'), select('a-user', [['system', t('audit.system')],
      ...people.map((p) => [String(p.id), p.display_name])]), 'user'),
    field('a-entity', t('audit.entity'), select('a-entity', ENTITIES.map((e) => [e, word('audit.entity', e)])), 'entity'),
    field('a-id', t('audit.entityId'), h('input', {id: 'a-id', inputmode: 'numeric', size: 6, maxlength: 64}), 'entity_id'),
    field('a-asset', t('audit.asset'), select('a-asset', [...ctx.equipment.keys()].map((id) => [id, equipmentName(ctx, id)])),
      'asset'),
    field('a-since', t('audit.since'), h('input', {id: 'a-since', type: 'date'}), 'since'),
    field('a-until', t('audit.until'), h('input', {id: 'a-until', type: 'date'}), 'until'));
  form.addEventListener('submit', (e) => e.preventDefault());
  const csv = h('a', {class: 'btn', id: 'audit-csv', href: `/api/audit?${query({format: 'csv'})}`, download: 'pumpwatch-audit.csv'},
    t('audit.csv'));
  const slot = h('div', {class: 'audit-slot'}, loading());
  const pager = h('div', {class: 'pager'});
  const render = async () => {
    csv.href = `/api/audit?${query({format: 'csv'})}`;
    try {
      const page = await get(`/api/audit?${query({limit: String(PAGE), offset: String(offset)})}`);
      slot.replaceChildren(auditTable(ctx, page.data, t('audit.shown', {from: page.count ? offset + 1 : 0,
        to: offset + page.data.length, total: page.count})));
      const prev = h('button', {type: 'button', class: 'btn', disabled: offset === 0}, t('common.prev'));
      const next = h('button', {type: 'button', class: 'btn', disabled: offset + PAGE >= page.count}, t('common.next'));
      prev.addEventListener('click', () => { offset = Math.max(0, offset - PAGE); render(); });
      next.addEventListener('click', () => { offset += PAGE; render(); });
      pager.replaceChildren(prev, next);
    } catch (err) {
      slot.replaceChildren(errorBox(err));
      pager.replaceChildren();
    }
  };
  mount(main, pageHeader(t('audit.title'), h('p', {class: 'muted'}, t('audit.explain'))), form,
    h('p', {}, csv), slot, pager);
  await render();
  return () => {};
}

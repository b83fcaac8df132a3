// The audit trail (supervisor, director, admin): who changed what and when, filtered, paged and exported
// as CSV. Read-only: the API has no route that writes the trail. Records link to their pages; actions,
// kinds of record and the usual fields are said in words, people by name, times in the site's zone.
// Other pages link here with filters in the address: `#/audit?entity=task&entity_id=12`. With several
// estates in scope, one estate's records can be chosen (`?estate=`), as on the other estate pages.

import {get} from './api.js';
import {equipmentName, errorText, loading, pageHeader, personName, word} from './common.js';
import {h, mount} from './dom.js';
import {chosenEstate, estateField, estateName} from './estatepick.js';
import {fmtDateTime, fmtNum, has, t} from './i18n.js';

const PAGE = 50;
const ENTITIES = ['task', 'alarm', 'attachment', 'access_request', 'change_request', 'exception', 'handover',
  'plan', 'report', 'user', 'deputy', 'api_token'];
const SHOWN_CHANGES = 6; // fields listed in a row; the rest are behind "details"
const PEOPLE_FIELDS = new Set(['by', 'acknowledged_by', 'technician_signed_by', 'supervisor_signed_by', 'created_by', 'escort_id',
  'escort_deputy_id', 'requested_by', 'supervisor_approved_by', 'director_approved_by', 'decided_by', 'ended_by',
  'principal_id', 'deputy_id', 'outgoing_id', 'incoming_id', 'received_by', 'user_id', 'opened_by', 'responded_by',
  'started_by', 'sent_back_by', 'cancelled_by', 'prepared_by', 'approved_by']);
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

function errorBox(err) { return h('p', {class: 'error', role: 'alert'}, errorText(err)); }

/** The page of a record of the trail, where there is one. */
export function entityHref(entity, id) {
  const n = encodeURIComponent(id);
  switch (entity) {
    case 'task': return `#/task/${n}`;
    case 'access_request': return `#/approvals?tab=access&state=all&id=${n}`;
    case 'change_request': return `#/approvals?tab=change&state=all&id=${n}`;
    case 'exception': return `#/exceptions?state=all&id=${n}`;
    case 'handover': return `#/handover/${n}`;
    case 'report': { // `<estate>:<month>`, or a month alone from before estates
      const m = /^(?:([^:]+):)?(\d{4}-\d{2})$/.exec(id);
      return m ? `#/monthly/${m[2]}${m[1] ? `?estate=${encodeURIComponent(m[1])}` : ''}` : null;
    }
    case 'user': case 'deputy': case 'api_token': return '#/users';
    case 'plan': return '#/plans';
    case 'alarm': return `#/alarm/${n}`;
    default: return null;
  }
}

function fieldName(key) { return has(`audit.field.${key}`) ? t(`audit.field.${key}`) : key; }

/** A value of a before/after snapshot as short text, in words where the field is known. */
function valueText(ctx, entity, key, value) {
  if (value === null || value === undefined || value === '') return '—';
  if (typeof value === 'boolean') return value ? t('audit.yes') : t('audit.no');
  if (PEOPLE_FIELDS.has(key) && Number.isInteger(Number(value))) return nameOf(ctx, Number(value));
  if ((key === 'assignee_ids' || key === 'assignees') && Array.isArray(value)) return value.length ? value.map((id) => nameOf(ctx, id)).join(t('mg.sep')) : '—';
  if (typeof value === 'string' && has(`audit.val.${value}`)) return t(`audit.val.${value}`);
  if (key === 'roles' && Array.isArray(value)) return value.map((r) => word('role', r)).join(t('mg.sep'));
  if (key === 'state') return entity === 'task' ? word('task', value) : word('req', value);
  if (key === 'priority') return word('prio', value);
  if (key === 'severity' || key === 'peak_severity') return word('sev', value);
  if (key === 'kind' && entity === 'task') return word('kind', value);
  if ((key === 'asset' || key === 'room') && typeof value === 'string') return equipmentName(ctx, value);
  if (key === 'estate' && typeof value === 'string') return estateName(ctx, value);
  if (typeof value === 'string' && TIME.test(value)) return fmtDateTime(value, true);
  if (Array.isArray(value)) return t('audit.items', {n: fmtNum(value.length, 0)});
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** A person by name (the trail says who, never "you"). */
function nameOf(ctx, id) {
  const person = ctx.people && ctx.people.get(id);
  if (person) return person.display_name;
  return ctx.me && ctx.me.id === id ? ctx.me.display_name || ctx.me.username : personName(ctx, id);
}

/** What changed in one row: "field: before → after" for the first few fields, the whole row on request. */
function changes(ctx, entry) {
  const before = entry.before || {};
  const after = entry.after || {};
  // The record's own id is in the row's "what" column already.
  const keys = [...new Set([...Object.keys(after), ...Object.keys(before)])]
    .filter((key) => key !== 'id')
    .filter((key) => !(key in before && key in after && JSON.stringify(before[key]) === JSON.stringify(after[key])));
  if (!keys.length) return h('span', {class: 'muted'}, '—');
  const list = h('ul', {class: 'audit-changes'}, keys.slice(0, SHOWN_CHANGES).map((key) => h('li', {'data-field': key},
    h('span', {class: 'audit-field'}, fieldName(key)), t('mg.colon'),
    key in before ? h('span', {class: 'audit-before'}, valueText(ctx, entry.entity, key, before[key])) : null,
    key in before ? ' → ' : null,
    h('span', {class: 'audit-after'}, key in after ? valueText(ctx, entry.entity, key, after[key]) : '—'))));
  const nested = [...Object.values(before), ...Object.values(after)].some((v) => v && typeof v === 'object');
  if (keys.length <= SHOWN_CHANGES && !nested) return list;
  // Long or nested rows (a checklist, a handover's lists) in full, on request.
  return [list, h('details', {}, h('summary', {}, t('audit.details', {n: fmtNum(keys.length, 0)})),
    h('pre', {class: 'audit-json'}, JSON.stringify({before: entry.before, after: entry.after}, null, 2)))];
}

function actorText(ctx, entry) {
  if (entry.actor === 'system') return h('span', {class: 'chip audit-system'}, t('audit.system'));
  return entry.actor_name || nameOf(ctx, Number(entry.actor));
}

function recordCell(entry) {
  const label = [word('audit.entity', entry.entity), ' ', `#${entry.entity_id}`];
  const href = entityHref(entry.entity, entry.entity_id);
  return href ? h('a', {href, 'data-entity-link': entry.entity}, label) : h('span', {}, label);
}

function auditTable(ctx, entries, caption) {
  return h('div', {class: 'table-wrap', tabindex: '0'}, h('table', {class: 'audit'},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {},
      h('th', {scope: 'col'}, t('audit.when')), h('th', {scope: 'col'}, t('audit.who')),
      h('th', {scope: 'col'}, t('audit.what')), h('th', {scope: 'col'}, t('audit.action')),
      h('th', {scope: 'col'}, t('audit.changes')))),
    h('tbody', {}, entries.length ? entries.map((e) => h('tr', {'data-audit-id': e.id, 'data-entity': e.entity, 'data-action': e.action},
      h('td', {class: 'audit-when'}, h('time', {datetime: e.ts, title: fmtDateTime(e.ts)}, fmtDateTime(e.ts, true))),
      h('td', {}, actorText(ctx, e)),
      h('td', {}, recordCell(e)),
      h('td', {}, h('span', {class: ['chip', 'audit-act', `act-${e.action}`]}, word('audit.act', e.action))),
      h('td', {}, changes(ctx, e))))
      : h('tr', {}, h('td', {colspan: 5, class: 'empty'}, t('audit.none'))))));
}

export async function auditPage(main, ctx, queryText) {
  const start = new URLSearchParams(queryText || '');
  const filters = {user: '', entity: '', entity_id: '', asset: '', since: '', until: ''};
  for (const key of Object.keys(filters)) filters[key] = start.get(key) || '';
  // With several estates in scope: one estate's records, or every estate's ('').
  filters.estate = chosenEstate(ctx, start.get('estate'));
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
    control.value = filters[key];
    control.addEventListener('change', () => { filters[key] = control.value.trim(); offset = 0; render(); });
    return h('div', {class: 'field'}, h('label', {for: id}, label), control);
  };
  const select = (id, options) => h('select', {id}, h('option', {value: ''}, t('audit.any')),
    options.map(([value, text]) => h('option', {value}, text)));
  const people = [...ctx.people.values()].sort((a, b) => a.display_name.localeCompare(b.display_name));
  const estatePicker = estateField(ctx, filters.estate, (id) => { filters.estate = id; offset = 0; render(); },
    {id: 'a-estate'});
  const form = h('form', {class: 'filters audit-filters', 'aria-label': t('audit.filters')}, estatePicker,
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
  mount(main, pageHeader(t('audit.title'), h('div', {class: 'head-tools'}, csv)), h('p', {class: 'muted'}, t('audit.explain')), form,
    slot, pager);
  await render();
  return () => {};
}

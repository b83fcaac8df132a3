// The estate selector of the pages that show one estate's records or several estates' (alarm list, task
// board, plans, calendar, monthly report). Shown only when the user's scope holds more than one estate
// (ctx.estates, from GET /api/estates); the choice is kept in the page's address (`?estate=`) and on this
// device (localStorage), so a reload or a later visit keeps it.

import {h} from './dom.js';
import {pick, t} from './i18n.js';

const KEY = 'pumpwatch.estate';

/** Whether the user chooses among estates at all. */
export function manyEstates(ctx) { return ctx.estates.length > 1; }

function stored() {
  try { return localStorage.getItem(KEY) || ''; } catch { return ''; }
}

/** Keep the choice on this device ('' for every estate). */
export function rememberEstate(id) {
  try { localStorage.setItem(KEY, id || ''); } catch { /* private mode: the address still has it */ }
}

/**
 * The estate a page shows: the address's `estate`, else the one kept on this device, if it is in the
 * user's scope; else '' (every estate) when `all`, or the first estate. '' with one estate or none: the
 * server answers for the only estate of the scope.
 */
export function chosenEstate(ctx, fromAddress, {all = true} = {}) {
  if (!manyEstates(ctx)) return '';
  const known = (id) => ctx.estates.some((e) => e.id === id);
  if (fromAddress !== null && fromAddress !== undefined && (fromAddress === '' ? all : known(fromAddress))) return fromAddress;
  const kept = stored();
  if (known(kept)) return kept;
  return all ? '' : ctx.estates[0].id;
}

/** `estate=<id>` added to a query when one is chosen. */
export function withEstate(params, estate) {
  if (estate) params.set('estate', estate);
  return params;
}

/** The rooms of the chosen estate (its entry in GET /api/estates), else of the site the pages load. */
export function estateRooms(ctx, estate) {
  const found = estate ? ctx.estates.find((e) => e.id === estate) : null;
  if (found) return found.rooms;
  return manyEstates(ctx) ? [] : ctx.site.rooms;
}

/** The estate's time zone (its calendar's days and times), else the loaded site's. */
export function estateZone(ctx, estate) {
  const found = estate ? ctx.estates.find((e) => e.id === estate) : null;
  return (found && found.timezone) || ctx.site.timezone;
}

/** The estate's name in the current language. */
export function estateName(ctx, id) {
  const found = ctx.estates.find((e) => e.id === id);
  return found ? pick(found.name) || id : id;
}

/**
 * The labelled selector (null with one estate): `onChange(id)` after the choice is kept on this device.
 * `all`: the first option is every estate of the scope.
 */
export function estateField(ctx, value, onChange, {id = 'f-estate', all = true} = {}) {
  if (!manyEstates(ctx)) return null;
  const options = [...(all ? [['', t('estate.all')]] : []), ...ctx.estates.map((e) => [e.id, pick(e.name) || e.id])];
  const el = h('select', {id, 'data-estate-select': ''},
    options.map(([v, text]) => h('option', {value: v, selected: v === value}, text)));
  el.addEventListener('change', () => {
    rememberEstate(el.value);
    onChange(el.value);
  });
  return h('div', {class: 'field field-inline'}, h('label', {for: id}, t('estate.label')), el);
}

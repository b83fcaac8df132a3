// Times in the site's time zone for the management pages: a local day and time typed into a form becomes
// the instant the API wants, a month is its first to last local day, a calendar day is read in the
// site's zone (never the browser's: a supervisor abroad still plans the site's days).

import {getTimeZone} from './i18n.js';

const pad = (n) => String(n).padStart(2, '0');

/** Year, month (1-12), day, hour, minute and weekday (0 = Sunday) of an instant in the site's zone. */
export function siteParts(value) {
  const date = value instanceof Date ? value : new Date(value);
  const parts = new Intl.DateTimeFormat('en-US', {timeZone: getTimeZone(), year: 'numeric', month: '2-digit',
    day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', weekday: 'short'}).formatToParts(date);
  const get = (type) => parts.find((p) => p.type === type).value;
  const weekday = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(get('weekday'));
  return {year: Number(get('year')), month: Number(get('month')), day: Number(get('day')),
    hour: Number(get('hour')) % 24, minute: Number(get('minute')), weekday};
}

/** The instant at which the site's clocks show this local date and time (a time in a DST gap moves on). */
export function siteInstant(year, month, day, hour = 0, minute = 0) {
  const wanted = Date.UTC(year, month - 1, day, hour, minute);
  let guess = wanted;
  for (let i = 0; i < 3; i++) { // the zone's offset at the guess, twice over: exact across DST changes
    const p = siteParts(new Date(guess));
    const shown = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute);
    guess += wanted - shown;
  }
  return new Date(guess);
}

/** "YYYY-MM-DD" of an instant in the site's zone. */
export function siteDay(value) {
  const p = siteParts(value);
  return `${p.year}-${pad(p.month)}-${pad(p.day)}`;
}

/** "YYYY-MM" of an instant (default: now) in the site's zone. */
export function siteMonth(value = new Date()) {
  const p = siteParts(value);
  return `${p.year}-${pad(p.month)}`;
}

/** A value for <input type="datetime-local"> showing the instant in the site's zone. */
export function toLocalInput(value) {
  const p = siteParts(value);
  return `${p.year}-${pad(p.month)}-${pad(p.day)}T${pad(p.hour)}:${pad(p.minute)}`;
}

/** The instant of a datetime-local (or date) input's value read as the site's local time; null if empty. */
export function fromLocalInput(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}))?/.exec(text || '');
  if (!m) return null;
  return siteInstant(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4] || 0), Number(m[5] || 0));
}

/** The first instant of a month "YYYY-MM" and of the month after it, in the site's zone. */
export function monthBounds(month) {
  const [year, mon] = month.split('-').map(Number);
  const next = mon === 12 ? [year + 1, 1] : [year, mon + 1];
  return {start: siteInstant(year, mon, 1), end: siteInstant(next[0], next[1], 1), year, month: mon};
}

/** "YYYY-MM" of the month `delta` months from `month`. */
export function shiftMonth(month, delta) {
  const [year, mon] = month.split('-').map(Number);
  const index = year * 12 + (mon - 1) + delta;
  return `${Math.floor(index / 12)}-${pad((index % 12) + 1)}`;
}

/** Days in a month (1-12) of a year. */
export function daysIn(year, month) { return new Date(Date.UTC(year, month, 0)).getUTCDate(); }

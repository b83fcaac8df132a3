// Simplified Chinese by default, English by a switch (remembered in localStorage); numbers, dates and
// relative times through Intl for the chosen locale, in the site's time zone.

import {STRINGS} from './strings.js';

const KEY = 'pumpwatch.lang';
const LOCALES = {zh: 'zh-CN', en: 'en-GB'};
let current = (() => {
  try { return localStorage.getItem(KEY) === 'en' ? 'en' : 'zh'; } catch { return 'zh'; }
})();
let timeZone;
const listeners = new Set();

export function lang() { return current; }
export function locale() { return LOCALES[current]; }

export function setLang(value) {
  current = value === 'en' ? 'en' : 'zh';
  try { localStorage.setItem(KEY, current); } catch { /* private mode: just for this page */ }
  document.documentElement.lang = locale();
  listeners.forEach((fn) => fn(current));
}

export function onLangChange(fn) { listeners.add(fn); }

export function setTimeZone(tz) {
  try {
    new Intl.DateTimeFormat('en', {timeZone: tz});
    timeZone = tz;
  } catch { timeZone = undefined; }
}
export function getTimeZone() { return timeZone; }

/** The text of `key` in the current language, with {name} placeholders filled from params. */
export function t(key, params) {
  const entry = STRINGS[key];
  let text = entry ? entry[current === 'en' ? 1 : 0] : key;
  if (params) text = text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
  return text;
}

/** Whether a key has a translation (for words from the API, e.g. alarm types). */
export function has(key) { return key in STRINGS; }

/** A bilingual value from the API: {zh, en}, or an object with `${field}_zh` / `${field}_en`. */
export function pick(value, field) {
  if (!value) return '';
  if (field) return value[`${field}_${current}`] || value[`${field}_zh`] || value[`${field}_en`] || '';
  return value[current] || value.zh || value.en || '';
}

const numberFormats = new Map();
export function fmtNum(value, digits = 2, minDigits = 0) {
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return '—';
  const key = `${current}|${digits}|${minDigits}`;
  if (!numberFormats.has(key)) {
    numberFormats.set(key, new Intl.NumberFormat(locale(), {maximumFractionDigits: digits, minimumFractionDigits: minDigits}));
  }
  return numberFormats.get(key).format(Number(value));
}

function dtf(options) { return new Intl.DateTimeFormat(locale(), {timeZone, ...options}); }

function asDate(value) { return value instanceof Date ? value : new Date(value); }

export function fmtTime(value, seconds = false) {
  return dtf({hour: '2-digit', minute: '2-digit', ...(seconds ? {second: '2-digit'} : {}), hour12: false}).format(asDate(value));
}

export function fmtDate(value) { return dtf({year: 'numeric', month: 'short', day: 'numeric', weekday: 'short'}).format(asDate(value)); }

export function fmtDateTime(value, short = false) {
  return short
    ? dtf({month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false}).format(asDate(value))
    : dtf({dateStyle: 'medium', timeStyle: 'short', hour12: false}).format(asDate(value));
}

/** "5 minutes ago" / "in 2 hours" in the current language. */
export function fmtRel(value, now = Date.now()) {
  const seconds = (asDate(value).getTime() - now) / 1000;
  const abs = Math.abs(seconds);
  const rtf = new Intl.RelativeTimeFormat(locale(), {numeric: 'auto'});
  if (abs < 60) return rtf.format(Math.round(seconds), 'second');
  if (abs < 3600) return rtf.format(Math.round(seconds / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(seconds / 3600), 'hour');
  return rtf.format(Math.round(seconds / 86400), 'day');
}

/** "2 h 05 min" style duration. */
export function fmtDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  if (d) return t('dur.dh', {d, h: hh});
  if (hh) return t('dur.hm', {h: hh, m: mm});
  if (mm) return t('dur.m', {m: mm});
  return t('dur.s', {s});
}

/** The calendar day (YYYY-MM-DD) of a moment in the site's time zone. */
export function dayKey(value) {
  const parts = new Intl.DateTimeFormat('en-CA', {timeZone, year: 'numeric', month: '2-digit', day: '2-digit'}).formatToParts(asDate(value));
  const get = (type) => parts.find((p) => p.type === type).value;
  return `${get('year')}-${get('month')}-${get('day')}`;
}

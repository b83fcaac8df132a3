// Small pieces the management pages share: labelled fields, selects of people and places, a reason box,
// the server's refusals in the reader's language, and state chips for requests.

import {ApiError, NetworkError} from './api.js';
import {equipmentName, errorText, roomName} from './common.js';
import {h} from './dom.js';
import {fmtDateTime, fmtTime, has, pick, t} from './i18n.js';
import {siteDay} from './sitetime.js';

let serial = 0;
/** A unique element id with a readable prefix. */
export function uid(prefix) { serial += 1; return `${prefix}-${serial}`; }

/** A labelled form field (label above the control; `*` when required; an optional hint below). */
export function field(label, control, {required = false, hint, wide = false} = {}) {
  if (!control.id) control.id = uid('f');
  if (required) control.setAttribute('aria-required', 'true');
  const hintEl = hint ? h('p', {class: 'hint muted', id: `${control.id}-hint`}, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', {class: ['field', wide ? 'field-wide' : '']},
    h('label', {for: control.id}, label, required ? h('span', {class: 'req', 'aria-hidden': 'true'}, ' *') : null),
    control, hintEl);
}

/** A <select> of [value, text] pairs with `value` chosen. */
export function select(id, options, value = '', attrs = {}) {
  return h('select', {id, ...attrs}, options.map(([v, text]) => h('option', {value: v, selected: String(v) === String(value)}, text)));
}

/** Active colleagues as options (display names), optionally only those holding one of `roles`. */
export function peopleOptions(ctx, roles) {
  return [...ctx.people.values()]
    .filter((p) => !roles || p.roles.some((r) => roles.includes(r)))
    .sort((a, b) => a.display_name.localeCompare(b.display_name, 'zh-CN'))
    .map((p) => [String(p.id), p.display_name]);
}

/** The rooms as options. */
export function roomOptions(ctx) { return ctx.site.rooms.map((r) => [r.id, pick(r.name)]); }

/** The equipment of a room (or of every room) as options. */
export function equipmentOptions(ctx, room) {
  return ctx.site.rooms.filter((r) => !room || r.id === room)
    .flatMap((r) => r.equipment.map((e) => [e.id, room ? pick(e.name) : aside(pick(e.name), pick(r.name))]));
}

/** Where something is: "equipment · room" in words (`estate`: the estate of the row it is shown in). */
export function place(ctx, asset, room, estate) {
  return [asset ? equipmentName(ctx, asset, estate) : '', room ? roomName(ctx, room, estate) : ''].filter(Boolean).join(' · ');
}

/** Items joined as the language lists them ("甲、乙" / "A, B"). */
export function joined(items) { return items.filter(Boolean).join(t('mg.sep')); }

/** "text（aside）" / "text (aside)". */
export function aside(text, more) { return more ? `${text}${t('mg.paren', {x: more})}` : text; }

/** "label：" / "label: ". */
export function colon() { return t('mg.colon'); }

/** A date and time in the site's zone, or a dash. */
export function when(value, short = false) { return value ? fmtDateTime(value, short) : '—'; }

/** A period: "7 Dec 2026 13:29–16:29" when it ends on the day it starts, else both in full. */
export function period(from, to) {
  if (!from || !to) return `${when(from)} – ${when(to)}`;
  return siteDay(from) === siteDay(to) ? `${fmtDateTime(from)}–${fmtTime(to)}` : `${when(from)} – ${when(to)}`;
}

/** A chip for the state of a request (access, change, exception, handover). */
export function requestChip(state) {
  return h('span', {class: ['chip', `req-${state}`], 'data-state': state}, has(`req.${state}`) ? t(`req.${state}`) : state);
}

// The server's refusals are English sentences; the common ones are said here in both languages.
const REFUSALS = [
  [/no one approves .* they filed themselves/, 'why.ownRequest'],
  [/two approvals must come from two different people/, 'why.twoPeople'],
  [/the approval this user can give is already there/, 'why.slotTaken'],
  [/access is approved by the engineering supervisor and the director/, 'why.accessRoles'],
  [/a deputy decides in the name of the person they stand in for/, 'why.deputyForRequester'],
  [/needs the supervisor \(held, or as the deputy of one\)/, 'why.needSupervisor'],
  [/entry and exit are confirmed by the escort/, 'why.notEscort'],
  [/outside the approved time window/, 'why.outsideWindow'],
  [/an exception is ended by the supervisor or by the person who asked/, 'why.revokeWho'],
  [/already covers this switch in that time/, 'why.overlap'],
  [/the exception's time is already over/, 'why.over'],
  [/the visit window is already over/, 'why.over'],
  [/a visit window is at most 31 days|an exception lasts at most 31 days/, 'why.max31'],
  [/must end after it starts|must be after|end after it starts/, 'why.endAfterStart'],
  [/the outgoing person does not receive their own handover/, 'why.ownHandover'],
  [/this handover is for the incoming person it names/, 'why.notIncoming'],
  [/sign: type your name or draw your signature/, 'sig.missing'],
  [/is not over: its report can be signed from/, 'why.monthNotOver'],
  [/the preparer .* and the approver .* must be two people/, 'why.twoSigners'],
  [/already signed on that line/, 'why.lineSigned'],
  [/username '.*' is taken/, 'why.nameTaken'],
  [/cannot be their own deputy/, 'why.selfDeputy'],
  [/does not hold the role/, 'why.principalRole'],
  [/nobody can deputise as/, 'why.notDeputisable'],
];

/** A refusal or failure as a sentence in the current language (common.js says the rest by problem type). */
export function problemText(err) {
  if (err instanceof NetworkError) return t('err.network');
  if (err instanceof ApiError) {
    const detail = String(err.message || '');
    const known = REFUSALS.find(([re]) => re.test(detail));
    if (known) return t(known[1]);
  }
  return errorText(err);
}

/** An error line (role=alert) that fills with `problemText` of an error, or a plain message. */
export function errorLine() {
  const el = h('p', {class: 'field-error', role: 'alert'});
  return {el, show(errOrText) { el.textContent = typeof errOrText === 'string' ? errOrText : problemText(errOrText); },
    clear() { el.textContent = ''; }};
}

/** A button that runs `action` once at a time (disabled meanwhile); errors go to `onError`. */
export function actionButton(text, attrs, action, onError) {
  const button = h('button', {type: 'button', class: 'btn', ...attrs}, text);
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await action();
    } catch (err) {
      if (onError) onError(err); else throw err;
    } finally {
      if (button.isConnected) button.disabled = false;
    }
  });
  return button;
}

/** Why an action is not offered, shown beside where its button would be. */
export function whyNot(text) { return h('p', {class: 'why-not muted', 'data-why': ''}, text); }

// The technician's changes go through an outbox in IndexedDB: queued first, sent in order at once when
// the network is there, otherwise when it returns. A 409 (the task moved on meanwhile) is kept as a
// conflict for the user to see; later changes to the same task wait behind it until it is resolved.

import {ApiError, NetworkError, remember as keepCopy, request} from './api.js';
import {kv, outbox} from './store.js';

const listeners = new Set();
let user = '';
let running = null;
let timer = null;
let again = false;

/** Called after every change of the outbox, with its summary. */
export function onOutboxChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }

export function setOutboxUser(username) { user = username || ''; }

async function mine() {
  const all = await outbox.all();
  return all.filter((op) => op.user === user).sort((a, b) => a.id - b.id);
}

export async function summary() {
  const ops = await mine();
  return {
    pending: ops.filter((op) => op.status === 'pending').length,
    conflicts: ops.filter((op) => op.status === 'conflict').length,
    failed: ops.filter((op) => op.status === 'failed').length,
    ops,
  };
}

async function changed(synced = []) {
  const sum = await summary();
  sum.synced = synced;
  listeners.forEach((fn) => fn(sum));
  return sum;
}

/**
 * Queue changes, in order. kind: create | start | check | complete | note | attach.
 * taskId, or taskRef: '#i' (the i-th op of this batch, a `create`) or a queued create's id;
 * key (checklist), body (JSON), blob + filename (+ checklistKey) (attach). A text field may name an attachment uploaded by
 * an earlier op as {att:#i}: it becomes [attachment:<id>] when sent. Syncing starts at once.
 */
export async function enqueue(...batch) {
  const ids = [];
  const fill = (value) => (typeof value === 'string'
    ? value.replace(/\{att:#(\d+)\}/g, (m, i) => `{att:${ids[Number(i)]}}`) : value);
  for (const op of batch) {
    const record = {...op, user, status: 'pending', created: Date.now()};
    if (typeof record.taskRef === 'string' && record.taskRef.startsWith('#')) record.taskRef = ids[Number(record.taskRef.slice(1))];
    if (record.body) record.body = Object.fromEntries(Object.entries(record.body).map(([k, v]) => [k, fill(v)]));
    ids.push(await outbox.add(record));
  }
  await changed();
  sync();
  return ids;
}

function requestFor(op, taskId) {
  const base = `/api/tasks/${taskId}`;
  switch (op.kind) {
    case 'create': return ['POST', '/api/tasks', {json: op.body}];
    case 'start': return ['POST', `${base}/start`, {}];
    case 'check': return ['PUT', `${base}/checklist/${encodeURIComponent(op.key)}`, {json: op.body}];
    case 'complete': return ['POST', `${base}/complete`, {json: op.body}];
    case 'note': return ['POST', `${base}/notes`, {json: op.body}];
    case 'attach': {
      const form = new FormData();
      form.append('file', op.blob, op.filename || 'photo.jpg');
      if (op.checklistKey) form.append('checklist_key', op.checklistKey); // a document for that checklist item
      return ['POST', `${base}/attachments`, {form}];
    }
    default: throw new Error(`unknown outbox change ${op.kind}`);
  }
}

function taskKey(op) {
  if (op.kind === 'create') return `r${op.id}`;
  return op.taskId != null ? `t${op.taskId}` : `r${op.taskRef}`;
}

// What synced ops produced, for the ops queued behind them: t<opId> -> task id, a<opId> -> attachment id.
async function results() { return (await kv.get('outbox-results')) || {}; }

async function remember(key, value) {
  const map = await results();
  map[key] = value;
  const keys = Object.keys(map);
  for (const old of keys.slice(0, Math.max(0, keys.length - 500))) delete map[old];
  await kv.set('outbox-results', map);
}

/** The op ready to send (task id and attachment ids filled in), or null while it waits for another op. */
async function resolved(op) {
  const map = await results();
  let taskId = op.taskId;
  if (taskId == null && op.kind !== 'create') {
    taskId = map[`t${op.taskRef}`];
    if (taskId == null) return null;
  }
  let waiting = false;
  const body = op.body && Object.fromEntries(Object.entries(op.body).map(([k, v]) => [k, typeof v !== 'string' ? v
    : v.replace(/\{att:(\d+)\}/g, (m, id) => {
      const found = map[`a${id}`];
      if (found == null) { waiting = true; return m; }
      return `[attachment:${found}]`;
    })]));
  return waiting ? null : {...op, taskId, body};
}

/** A start that finds the task already in progress (started twice, e.g. by a double tap) did its job. */
function harmless(op, err) {
  return op.kind === 'start' && err.status === 409 && err.problem.current === 'in_progress';
}

async function syncOnce() {
  const ops = await mine();
  const blocked = new Set(ops.filter((op) => op.status !== 'pending').map(taskKey));
  const synced = [];
  for (const queued of ops) {
    if (queued.status !== 'pending' || blocked.has(taskKey(queued))) continue;
    const op = await resolved(queued);
    if (!op) { blocked.add(taskKey(queued)); continue; } // waits for an op before it
    const [method, path, opts] = requestFor(op, op.taskId);
    let result = null;
    try {
      result = await request(method, path, opts);
    } catch (err) {
      if (err instanceof NetworkError) break; // offline: try again when the network returns
      if (!(err instanceof ApiError)) throw err;
      if (err.status === 401 || err.status >= 500 || err.status === 429) break; // sign in again / retry later
      if (!harmless(op, err)) {
        queued.status = err.status === 409 ? 'conflict' : 'failed';
        queued.error = err.message;
        queued.httpStatus = err.status;
        queued.current = err.problem.current || null;
        queued.taskId = op.taskId ?? null;
        await outbox.put(queued);
        blocked.add(taskKey(queued));
        continue;
      }
    }
    if (result && result.id != null && result.state && result.checklist) {
      await keepCopy(`/api/tasks/${result.id}`, result); // the offline copy is the server's newest
    }
    if (op.kind === 'create' && result) await remember(`t${op.id}`, result.id);
    if (op.kind === 'attach' && result) await remember(`a${op.id}`, result.id);
    await outbox.del(op.id);
    synced.push({opId: op.id, kind: op.kind, taskId: op.kind === 'create' && result ? result.id : op.taskId, result});
  }
  return changed(synced);
}

/** Send what is queued (one run at a time); resolves to the outbox summary. */
export function sync() {
  if (running) {
    again = true; // something new was queued meanwhile: one more round when this one ends
    return running;
  }
  running = (async () => {
    let sum;
    do {
      again = false;
      sum = await syncOnce();
    } while (again);
    return sum;
  })().finally(() => { running = null; });
  return running;
}

/** Try again a change that conflicted or failed. */
export async function retry(id) {
  const op = (await mine()).find((o) => o.id === id);
  if (op) {
    op.status = 'pending';
    delete op.error;
    await outbox.put(op);
    await changed();
    sync();
  }
}

/** Drop a change (and the queued changes of the same task that wait behind it). */
export async function discard(id) {
  const ops = await mine();
  const op = ops.find((o) => o.id === id);
  if (!op) return;
  const key = taskKey(op);
  for (const other of ops) {
    if (other.id === id || (other.id > id && taskKey(other) === key)) await outbox.del(other.id);
  }
  await changed();
  sync();
}

/** Sync when the network returns, when the app comes back to the foreground, and every 20 s. */
export function startSyncing() {
  if (!timer) {
    window.addEventListener('online', () => sync());
    document.addEventListener('visibilitychange', () => { if (!document.hidden) sync(); });
    timer = setInterval(() => { if (navigator.onLine) sync(); }, 20000);
  }
  sync();
}

/** The task as the technician sees it: the server's copy with the queued changes laid over it. */
export function overlay(task, ops) {
  if (!task) return task;
  const view = {...task, checklist: (task.checklist || []).map((i) => ({...i})), notes: [...(task.notes || [])]};
  view.pending = [];
  view.conflicts = [];
  for (const op of ops) {
    if (op.taskId !== task.id) continue;
    if (op.status !== 'pending') { view.conflicts.push(op); continue; }
    view.pending.push(op);
    if (op.kind === 'start') view.state = 'in_progress';
    if (op.kind === 'check') {
      const item = view.checklist.find((i) => i.key === op.key);
      if (item) Object.assign(item, {result: op.body.result, value: op.body.value, note: op.body.note, pending: true});
    }
    if (op.kind === 'complete') Object.assign(view, op.body, {state: 'done', pendingComplete: true});
    if (op.kind === 'note') view.notes.push({text: op.body.text, pending: true, at: new Date(op.created).toISOString()});
  }
  return view;
}

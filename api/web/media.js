// Photos from the camera (shrunk to a size that uploads over a weak signal and fits a shift offline) and a
// signature pad (finger, mouse or pen; or a typed name for keyboard users).

import {h} from './dom.js';
import {t} from './i18n.js';

const MAX_SIDE = 1600;
const ACCEPTED = ['image/jpeg', 'image/png', 'image/webp'];

/**
 * A canvas's picture as a Blob, encoded at once. Chromium's `toBlob` encodes in idle time and waits up to
 * 1 s (4 s on Android) for it before starting, then up to several seconds more: on a busy page a
 * signature held the completion back for longer than a technician waits. A signature or a 1600 px photo
 * encodes in milliseconds, so it is done here, now.
 */
export function canvasBlob(canvas, type, quality) {
  const url = canvas.toDataURL(type, quality);
  const bytes = atob(url.slice(url.indexOf(',') + 1));
  const data = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += 1) data[i] = bytes.charCodeAt(i);
  return new Blob([data], {type: url.slice(5, url.indexOf(';'))});
}

/** A JPEG of at most 1600 px a side, or the file itself if the browser cannot decode it but the API takes it. */
export async function shrinkPhoto(file) {
  try {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement('canvas');
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    const g = canvas.getContext('2d');
    g.fillStyle = '#fff';
    g.fillRect(0, 0, canvas.width, canvas.height);
    g.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    return canvasBlob(canvas, 'image/jpeg', 0.85);
  } catch { /* fall through */ }
  if (ACCEPTED.includes(file.type)) return file;
  throw new Error(t('photo.unsupported'));
}

/** A camera input with a preview; `get()` returns the chosen (shrunk) photo or null. */
export function photoInput(id, labelText) {
  let blob = null;
  const preview = h('img', {class: 'photo-preview', alt: '', hidden: true});
  const status = h('span', {class: 'muted photo-status', 'aria-live': 'polite'});
  const input = h('input', {type: 'file', id, accept: 'image/*', capture: 'environment', class: 'photo-input'});
  input.addEventListener('change', async () => {
    const file = input.files && input.files[0];
    blob = null;
    preview.hidden = true;
    if (!file) { status.textContent = ''; return; }
    status.textContent = t('photo.processing');
    try {
      blob = await shrinkPhoto(file);
      if (preview.src) URL.revokeObjectURL(preview.src);
      preview.src = URL.createObjectURL(blob);
      preview.alt = t('photo.previewAlt');
      preview.hidden = false;
      status.textContent = t('photo.ready', {kb: Math.max(1, Math.round(blob.size / 1024))});
      el.dataset.ready = 'true';
    } catch (err) {
      status.textContent = String(err.message || err);
    }
  });
  const el = h('div', {class: 'photo-field'},
    h('label', {for: id, class: 'photo-label'}, labelText || t('photo.take')), input, status, preview);
  return {el, get: () => blob, clear: () => { blob = null; input.value = ''; preview.hidden = true; status.textContent = ''; delete el.dataset.ready; }};
}

/** A signature pad. `get()` resolves to a PNG Blob, or null when neither drawn nor typed. */
export function signaturePad(id, labelText) {
  const canvas = h('canvas', {width: 600, height: 200, class: 'sig-canvas', id: `${id}-canvas`,
    'aria-label': t('sig.canvasLabel'), role: 'img'});
  const typed = h('input', {type: 'text', id: `${id}-typed`, autocomplete: 'name', class: 'sig-typed'});
  const g = canvas.getContext('2d');
  let drawn = false;
  let last = null;
  const point = (event) => {
    const rect = canvas.getBoundingClientRect();
    return {x: ((event.clientX - rect.left) / rect.width) * canvas.width, y: ((event.clientY - rect.top) / rect.height) * canvas.height};
  };
  const reset = () => {
    g.fillStyle = '#fff';
    g.fillRect(0, 0, canvas.width, canvas.height);
    g.strokeStyle = '#c8ced6';
    g.beginPath();
    g.moveTo(20, canvas.height - 40);
    g.lineTo(canvas.width - 20, canvas.height - 40);
    g.stroke();
    drawn = false;
    wrap.dataset.signed = 'false';
  };
  canvas.addEventListener('pointerdown', (event) => {
    canvas.setPointerCapture(event.pointerId);
    last = point(event);
    event.preventDefault();
  });
  canvas.addEventListener('pointermove', (event) => {
    if (!last) return;
    const p = point(event);
    g.strokeStyle = '#0b1f3a';
    g.lineWidth = 3;
    g.lineCap = 'round';
    g.beginPath();
    g.moveTo(last.x, last.y);
    g.lineTo(p.x, p.y);
    g.stroke();
    last = p;
    drawn = true;
    wrap.dataset.signed = 'true';
  });
  const end = () => { last = null; };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
  const clear = h('button', {type: 'button', class: 'btn btn-quiet'}, t('sig.clear'));
  clear.addEventListener('click', () => { reset(); typed.value = ''; });
  const wrap = h('div', {class: 'sig', 'data-signed': 'false'},
    h('p', {class: 'sig-label', id: `${id}-label`}, labelText || t('sig.label')),
    canvas,
    h('div', {class: 'sig-row'}, h('label', {for: `${id}-typed`}, t('sig.typed')), typed, clear));
  reset();
  return {
    el: wrap,
    async get() {
      const name = typed.value.trim();
      if (!drawn && !name) return null;
      if (!drawn) {
        g.fillStyle = '#0b1f3a';
        g.font = 'italic 48px serif';
        g.fillText(name, 30, canvas.height - 56);
      }
      return canvasBlob(canvas, 'image/png');
    },
    reset,
  };
}

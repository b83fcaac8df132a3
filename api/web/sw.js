// PumpWatch service worker: keeps the app shell (page, scripts, styles, icons) so the app opens without
// network for a whole shift. API calls are never cached here: the app keeps its own copies and its outbox
// in IndexedDB, so it can tell the user what is saved and what still has to sync.

const VERSION = '__VERSION__';
const SHELL = `pumpwatch-shell-${VERSION}`;
const ASSETS = ['/', ...__ASSETS__];

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL);
    await cache.addAll(ASSETS.map((url) => new Request(url, {cache: 'reload', credentials: 'same-origin'})));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith('pumpwatch-shell-') && key !== SHELL) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

async function fromNetwork(request, cacheKey) {
  const response = await fetch(request);
  if (response.ok) {
    const cache = await caches.open(SHELL);
    await cache.put(cacheKey || request, response.clone());
  }
  return response;
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === 'navigate' && url.pathname === '/') {
    // The app page: the network's newest when there is one, else the kept copy.
    event.respondWith(fromNetwork(request, '/').catch(async () => (await caches.match('/')) || Response.error()));
    return;
  }
  if (url.pathname.startsWith('/static/')) {
    // Shell files: the kept copy at once (versioned with the worker), refreshed in the background.
    event.respondWith((async () => {
      const kept = await caches.match(url.pathname);
      const fresh = fromNetwork(request, url.pathname);
      if (kept) {
        event.waitUntil(fresh.catch(() => undefined));
        return kept;
      }
      return fresh;
    })());
  }
  // Everything else (the API, labels, docs) goes to the network as usual.
});

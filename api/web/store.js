// IndexedDB: small key-value settings, cached GET responses for offline reading, and the outbox of
// changes made while the network was away (photos kept as Blobs).

const DB_NAME = 'pumpwatch';
const DB_VERSION = 1;
let opening = null;

function open() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, DB_VERSION);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains('kv')) db.createObjectStore('kv');
        if (!db.objectStoreNames.contains('cache')) db.createObjectStore('cache');
        if (!db.objectStoreNames.contains('outbox')) db.createObjectStore('outbox', {keyPath: 'id', autoIncrement: true});
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  return opening;
}

async function run(storeName, mode, work) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(storeName, mode);
    const result = work(tx.objectStore(storeName));
    tx.oncomplete = () => resolve(result && 'result' in result ? result.result : undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

export const kv = {
  get: (key) => run('kv', 'readonly', (st) => st.get(key)),
  set: (key, value) => run('kv', 'readwrite', (st) => st.put(value, key)),
  del: (key) => run('kv', 'readwrite', (st) => st.delete(key)),
};

export const cache = {
  get: (key) => run('cache', 'readonly', (st) => st.get(key)),
  set: (key, value) => run('cache', 'readwrite', (st) => st.put({value, at: Date.now()}, key)),
  clear: () => run('cache', 'readwrite', (st) => st.clear()),
};

export const outbox = {
  add: (op) => run('outbox', 'readwrite', (st) => st.add(op)),
  put: (op) => run('outbox', 'readwrite', (st) => st.put(op)),
  del: (id) => run('outbox', 'readwrite', (st) => st.delete(id)),
  all: () => run('outbox', 'readonly', (st) => st.getAll()),
};

// The live stream (/api/live, Server-Sent Events with the session cookie): the newest reading of every
// sensor, alarm events, and plain states for the connection (live / reconnecting / stale / down) and
// for each sensor (stale when the server says so or when it has gone quiet).

const QUIET_CONNECTION_S = 15; // readings arrive every second or so: this long without any is a stale stream
const MIN_SENSOR_QUIET_S = 35; // a sensor is stale after 3.5 of its usual intervals, and never sooner than this

class Live {
  constructor() {
    this.readings = new Map(); // sensor -> reading (as the API sends it) + received (ms)
    this.intervals = new Map(); // sensor -> seconds between its last two readings
    this.status = 'idle';
    this.lastEvent = 0;
    this.lastReadingTs = 0; // the server clock's newest reading time
    this.serverOffset = 0; // server clock minus browser clock, seconds
    this.listeners = {readings: new Set(), alarm: new Set(), status: new Set()};
    this.source = null;
    this.estate = ''; // whose stream: '' every estate in scope
    this.watchdog = null;
  }

  on(kind, fn) { this.listeners[kind].add(fn); return () => this.listeners[kind].delete(fn); }

  emit(kind, value) { this.listeners[kind].forEach((fn) => { try { fn(value); } catch (err) { console.error(err); } }); }

  setStatus(status) {
    if (status !== this.status) {
      this.status = status;
      this.emit('status', status);
    }
  }

  /** Take readings from a snapshot (/api/rooms/{id}/latest) without counting them as live news. */
  seed(list) {
    const now = Date.now();
    for (const r of list) {
      if (!this.readings.has(r.sensor) || this.readings.get(r.sensor).ts < r.ts) this.readings.set(r.sensor, {...r, received: now});
      this.noteServerTime(r.ts);
    }
  }

  noteServerTime(ts) {
    if (ts > this.lastReadingTs) {
      this.lastReadingTs = ts;
      this.serverOffset = ts - Date.now() / 1000;
    }
  }

  /** Seconds on the server's clock (the simulator may run faster than real time). */
  serverNow() { return Date.now() / 1000 + this.serverOffset; }

  /** Follow the stream of `estate` ('' : every estate in scope); another estate starts over. */
  start(estate = '') {
    if (this.source && this.estate === estate) return;
    if (this.source) {
      this.source.close();
      this.source = null;
      this.readings.clear(); // sensor ids repeat across estates: the other estate's values are not these
      this.intervals.clear();
    }
    this.estate = estate;
    this.setStatus('connecting');
    const path = estate ? `/api/live?estate=${encodeURIComponent(estate)}` : '/api/live';
    const source = new EventSource(path, {withCredentials: true});
    this.source = source;
    source.onopen = () => { this.lastEvent = Date.now(); this.setStatus('live'); };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (signed out, or the server is gone): start over in a while.
        this.source = null;
        this.setStatus('down');
        setTimeout(() => { if (!this.source && this.wanted) this.start(this.estate); }, 5000);
      } else {
        this.setStatus('reconnecting');
      }
    };
    source.addEventListener('readings', (event) => {
      this.lastEvent = Date.now();
      if (this.status !== 'live') this.setStatus('live');
      let batch;
      try { batch = JSON.parse(event.data); } catch { return; }
      const now = Date.now();
      for (const r of batch) {
        const before = this.readings.get(r.sensor);
        if (before && r.ts > before.ts) this.intervals.set(r.sensor, r.ts - before.ts);
        this.readings.set(r.sensor, {...r, received: now});
        this.noteServerTime(r.ts);
      }
      this.emit('readings', batch);
    });
    source.addEventListener('alarm', (event) => {
      this.lastEvent = Date.now();
      try { this.emit('alarm', JSON.parse(event.data)); } catch { /* ignore a malformed event */ }
    });
    this.wanted = true;
    if (!this.watchdog) {
      this.watchdog = setInterval(() => {
        if (this.status === 'live' && Date.now() - this.lastEvent > QUIET_CONNECTION_S * 1000) this.setStatus('stale');
        this.emit('status', this.status); // a tick: views re-check sensors that went quiet
      }, 2000);
    }
  }

  stop() {
    this.wanted = false;
    if (this.source) this.source.close();
    this.source = null;
    clearInterval(this.watchdog);
    this.watchdog = null;
    this.setStatus('idle');
  }

  /** Whether a sensor's value can be trusted as current. */
  isStale(sensor) {
    const r = this.readings.get(sensor);
    if (!r) return true;
    if (r.stale || r.quality === 'stale' || r.quality === 'device_error') return true;
    if (this.status !== 'live') return true;
    const usual = this.intervals.get(sensor) || 10;
    const quiet = Math.max(MIN_SENSOR_QUIET_S, 3.5 * usual);
    return (Date.now() - r.received) / 1000 > quiet;
  }
}

export const live = new Live();

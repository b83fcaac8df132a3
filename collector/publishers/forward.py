"""An edge's alarm events to the centre, durably: on disk first, sent in order, removed on the PUBACK.

The edge's alarm rules run on the edge, so a pump room keeps its alarms while the link is down; the
events they announce wait in an outbox file (SQLite, fsync on each event: a few an hour, never per
reading) and go to the centre (`pumpwatch/edge/<edge>/alarm`, QoS 1) one after another when the
link is up, each removed only once the broker acknowledged it. A restart or a power cut loses none;
an event sent twice (PUBACK lost) carries the same outbox number, so the centre applies it once.
Each sending is signed with the edge's key (`pumpwatch.signing`, a fresh sequence every time).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path

from collector.metrics import CollectorMetrics
from collector.stores.centre_link import CentreLink
from pumpwatch.alarm_events import AlarmEvent
from pumpwatch.backoff import Backoff
from pumpwatch.edge_wire import EDGE_ALARM_STREAM, alarm_topic, encode_edge_alarm
from pumpwatch.errors import StoreUnavailable
from pumpwatch.signing import Signer
from pumpwatch.wire import decode_alarm_event, encode_alarm_event

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    event BLOB NOT NULL
);
"""


class AlarmOutbox:
    """Alarm events waiting for the centre, oldest first, on disk."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def append(self, event: AlarmEvent) -> int:
        """Keep one event (on disk when this returns); its outbox number."""
        with self._lock:
            cursor = self._db.execute("INSERT INTO outbox (event) VALUES (?)", (encode_alarm_event(event),))
            return int(cursor.lastrowid or 0)

    def oldest(self, limit: int = 100) -> list[tuple[int, AlarmEvent]]:
        """The oldest waiting events with their numbers."""
        with self._lock:
            rows = self._db.execute("SELECT n, event FROM outbox ORDER BY n LIMIT ?", (limit,)).fetchall()
        return [(int(n), decode_alarm_event(event)) for n, event in rows]

    def remove(self, number: int) -> None:
        """Forget an event the centre's broker acknowledged."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE n = ?", (number,))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        """Close the file (everything in it is kept)."""
        with self._lock:
            self._db.close()


class AlarmForwarder:
    """An alarm-engine listener on the edge: each event into the outbox, then to the centre in order."""

    def __init__(self, outbox: AlarmOutbox, link: CentreLink, metrics: CollectorMetrics, *,
                 ack_timeout: float = 30.0, backoff: Backoff | None = None,
                 signer: Signer | None = None) -> None:
        self.outbox = outbox
        self.signer = signer
        self.link = link
        self.metrics = metrics
        self.ack_timeout = ack_timeout
        self.backoff = backoff or Backoff(first=1.0, cap=30.0)
        self.topic = alarm_topic(link.edge_id)
        self.forwarded = 0
        self._wake = asyncio.Event()
        metrics.alarm_outbox.set(len(outbox))

    def __call__(self, event: AlarmEvent) -> None:
        """Engine listener: keep the event on disk, then wake the sender."""
        self.outbox.append(event)
        self.metrics.alarm_outbox.inc()
        self._wake.set()

    async def run(self) -> None:
        """Send waiting events in order until cancelled; an event leaves the outbox on its PUBACK."""
        while True:
            waiting = await asyncio.to_thread(self.outbox.oldest)
            if not waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            for number, event in waiting:
                payload = encode_edge_alarm(number, event)
                if self.signer is not None:
                    payload = self.signer.seal(self.topic, payload, EDGE_ALARM_STREAM)
                try:
                    await self.link.publish(self.topic, payload, self.ack_timeout)
                except StoreUnavailable as err:
                    delay = self.backoff.next()
                    log.info("alarm event %s waits for the centre (%s); %d in the outbox",
                             event.key, err, len(self.outbox))
                    await self.link.wait_ready(delay)
                    break
                self.backoff.reset()
                await asyncio.to_thread(self.outbox.remove, number)
                self.forwarded += 1
                self.metrics.alarm_outbox.dec()

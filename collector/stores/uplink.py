"""The edge's series store: the centre. A write publishes one batch and returns on the broker's PUBACK.

The existing writer does the rest: it removes the readings from the durable buffer only after
`write` returned, retries with backoff while `write` raises `StoreUnavailable` (link down, no PUBACK
in time), and takes the newest rows first while a backlog waits (`fresh_first`).

Batch numbers (per edge, on disk): the centre stores each (edge, number) once, so a number must never
stand for other readings. Each batch's number is tied to a digest of its content and both are written
with fsync before the first send: the same readings sent again (no PUBACK seen, a restart after the
send) go under the same number and the centre recognises them; other readings always get a new
number. The newest `KEEP_DIGESTS` pairs are kept. Each sending is signed with the edge's key
(`pumpwatch.signing`): the centre stores only batches its edge signed.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from collector.metrics import CollectorMetrics
from collector.stores.centre_link import CentreLink
from pumpwatch.edge_wire import BATCH_STREAM, batch_topic, encode_columns, pack_batch
from pumpwatch.readings import Reading
from pumpwatch.series import HistoryPoint
from pumpwatch.signing import Signer

KEEP_DIGESTS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS numbers (
    seq INTEGER PRIMARY KEY,
    digest BLOB NOT NULL UNIQUE
);
"""


class BatchNumbers:
    """The edge's batch numbers on disk (SQLite, fsync on every new number)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a number is on disk before its batch is sent
        self._db.executescript(_SCHEMA)

    def number_for(self, digest: bytes) -> int:
        """The number of a batch with this content: the one it had, or the next one."""
        with self._lock:
            found = self._db.execute("SELECT seq FROM numbers WHERE digest = ?", (digest,)).fetchone()
            if found is not None:
                return int(found[0])
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = int(self._db.execute("SELECT coalesce(max(seq), 0) + 1 FROM numbers").fetchone()[0])
                self._db.execute("INSERT INTO numbers (seq, digest) VALUES (?, ?)", (seq, digest))
                if seq % 1000 == 0:
                    self._db.execute("DELETE FROM numbers WHERE seq <= ?", (seq - KEEP_DIGESTS,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return seq

    def last(self) -> int:
        """The newest number given (0 before the first)."""
        with self._lock:
            return int(self._db.execute("SELECT coalesce(max(seq), 0) FROM numbers").fetchone()[0])

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()


class UplinkStore:
    """A `SeriesStore` whose writes go to the centre; it keeps no history (the centre has it)."""

    def __init__(self, link: CentreLink, state_dir: Path, metrics: CollectorMetrics, *,
                 ack_timeout: float = 30.0, compression: int = 6, signer: Signer | None = None) -> None:
        self.link = link
        self.signer = signer
        self.metrics = metrics
        self.ack_timeout = ack_timeout
        self.compression = compression
        self.topic = batch_topic(link.edge_id)
        self.numbers = BatchNumbers(state_dir / "uplink.db")

    async def start(self) -> None:
        """Connect to the centre's broker (in the background)."""
        await self.link.start()

    async def close(self) -> None:
        """Disconnect and close the numbers file."""
        await self.link.stop()
        self.numbers.close()

    async def reachable(self) -> bool:
        """Whether the link is up and the centre answers (the writer's probe while it waits)."""
        return self.link.ready

    async def write(self, readings: Sequence[Reading]) -> None:
        """Publish one batch and return on its PUBACK; `StoreUnavailable` when the link cannot take it."""
        if not readings:
            return
        columns = encode_columns(list(readings), strip_estate=True)  # an edge is one estate's
        digest = hashlib.blake2b(columns, digest_size=16).digest()
        seq = await asyncio.to_thread(self.numbers.number_for, digest)
        payload = await asyncio.to_thread(pack_batch, seq, time.time(), len(readings), columns,
                                          self.compression)
        if self.signer is not None:
            payload = self.signer.seal(self.topic, payload, BATCH_STREAM)
        try:
            await self.link.publish(self.topic, payload, self.ack_timeout)
        except Exception:
            self.metrics.uplink_batches.labels(outcome="failed").inc()
            raise
        self.metrics.uplink_batches.labels(outcome="acked").inc()
        self.metrics.uplink_bytes.inc(len(payload))
        self.metrics.uplink_readings.inc(len(readings))

    async def latest(self, sensors: Sequence[str] | None = None) -> dict[str, Reading]:
        """Nothing: an edge keeps no history (the centre's store has it)."""
        return {}

    async def history(self, sensor: str, start: float, end: float, step: float) -> list[HistoryPoint]:
        """Nothing: an edge keeps no history."""
        return []

    async def count(self, sensor: str | None = None) -> int:
        """0: an edge keeps no history."""
        return 0

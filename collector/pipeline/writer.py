"""The writer: drains the durable buffer into the series store in batches, with retry and backoff.

A batch is removed from the buffer only after the store accepted it. A crash in between means the
batch is written again after restart; the store keeps one point per (series, timestamp), so nothing
is duplicated. A reading the store refuses as invalid is set aside in the buffer's `rejected` table
and counted (`pumpwatch_readings_dropped_total{reason="store_rejected"}`), never retried forever.

Retry: a batch the store could not take is written again as it was (same readings, so an uplink
sends it under the same batch number). The pause between tries doubles up to `retry_cap`, but a
store that can say cheaply whether it is back (`reachable()`: InfluxDB's /ping, the uplink's
connection) is asked every `probe_interval` meanwhile, and the batch goes as soon as it is: readings
never wait out a long pause for a store that came back.

Fresh first (an edge after an outage): while more than a batch waits, batches alternate between
the newest rows of the buffer and the oldest, so fresh readings reach the centre within about two
batches while the backlog drains behind them; both are stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from collector.metrics import CollectorMetrics
from collector.pipeline.buffer import DurableBuffer
from pumpwatch.backoff import Backoff
from pumpwatch.errors import StoreRejected, StoreUnavailable
from pumpwatch.readings import Reading
from pumpwatch.series import SeriesStore

log = logging.getLogger(__name__)


@runtime_checkable
class Reachable(Protocol):
    """A store that can tell cheaply, without a write, whether it is back."""

    async def reachable(self) -> bool:
        """Whether a write has a chance now."""
        ...


@dataclass
class _Batch:
    """What one write takes: from the oldest end (positions) or the newest (whole rows)."""

    newest: bool
    marks: list[int]  # positions (oldest end) or row numbers (newest end)
    readings: list[Reading]


class BufferWriter:
    """Moves readings from the buffer to the store until cancelled."""

    def __init__(self, buffer: DurableBuffer, store: SeriesStore, metrics: CollectorMetrics,
                 *, batch_size: int = 5000, wake: asyncio.Event | None = None,
                 idle_wait: float = 0.5, linger: float = 0.0, backoff: Backoff | None = None,
                 probe_interval: float = 1.0, fresh_first: bool = False) -> None:
        self.buffer = buffer
        self.store = store
        self.metrics = metrics
        self.batch_size = batch_size
        self.wake = wake or asyncio.Event()
        self.idle_wait = idle_wait
        self.linger = linger  # after a short batch, let more gather: fewer, fuller writes
        self.backoff = backoff or Backoff()
        self.probe_interval = probe_interval
        self.fresh_first = fresh_first
        self.healthy = True
        self.last_error: str | None = None
        self._retry: _Batch | None = None  # a batch the store did not take, written again as it was
        self._newest_turn = True  # with a backlog, the next batch comes from the newest end

    async def run(self) -> None:
        """Drain forever: write, remove, repeat; wait for new readings when empty.

        A batch shorter than `batch_size` means the writer has caught up; it then waits `linger`
        before the next write, so a trickle of small commits (devices polled one after another)
        becomes a few full writes a second instead of one small write per commit.
        """
        while True:
            written = await self.drain_once()
            if 0 < written < self.batch_size and self.linger > 0:
                await asyncio.sleep(self.linger)
            elif written == 0:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.idle_wait):
                        await self.wake.wait()

    async def drain_once(self) -> int:
        """Write one batch; returns readings written (0 when the buffer is empty or the store is down)."""
        batch = self._retry or await self._next_batch()
        if batch is None:
            return 0
        try:
            await self._write(batch.readings)
        except StoreUnavailable as err:
            self._retry = batch
            self.metrics.write_errors.labels(kind="unavailable").inc()
            self._unhealthy(str(err))
            delay = self.backoff.next()
            log.warning("series store unavailable (%s); %d readings wait, retry within %.1f s",
                        err, self.buffer.depth, delay)
            await self._pause(delay)
            return 0
        except StoreRejected as err:
            self._retry = None
            self.metrics.write_errors.labels(kind="rejected").inc()
            if batch.newest:  # the oldest end reaches these rows later and finds the bad readings there
                self._newest_turn = False
                return 0
            log.warning("series store refused a batch (%s); finding the bad readings", err)
            return await self._isolate(batch.marks, batch.readings)
        self._retry = None
        if batch.newest:
            await asyncio.to_thread(self.buffer.remove_rows, batch.marks)
        else:
            await asyncio.to_thread(self.buffer.remove_through, batch.marks[-1])
        self._written(len(batch.readings))
        return len(batch.readings)

    async def _next_batch(self) -> _Batch | None:
        """The next batch: alternately newest and oldest while a backlog waits (fresh first)."""
        backlog = self.fresh_first and self.buffer.depth > self.batch_size
        if backlog and self._newest_turn:
            rows, readings = await asyncio.to_thread(self.buffer.peek_newest, self.batch_size)
            batch = _Batch(True, rows, readings)
        else:
            positions, readings = await asyncio.to_thread(self.buffer.peek, self.batch_size)
            batch = _Batch(False, positions, readings)
        self._newest_turn = not self._newest_turn if backlog else True
        return batch if batch.readings else None

    async def _pause(self, delay: float) -> None:
        """Wait `delay` seconds, or less once the store, found away, says it is back.

        Asked every `probe_interval`. A store that answers the probe from the start but failed the write
        (up, yet refusing writes for now) gets the whole pause, so a sick store is not hammered.
        """
        store = self.store
        if not isinstance(store, Reachable):
            await asyncio.sleep(delay)
            return
        deadline = time.monotonic() + delay
        away = False
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, self.probe_interval))
            try:
                back = await store.reachable()
            except Exception:  # a failing probe is a "no", never a reason to stop writing
                back = False
            away = away or not back
            if back and away:
                log.info("series store reachable again; writing the %d buffered readings", self.buffer.depth)
                return

    async def _write(self, readings: list[Reading]) -> None:
        started = time.perf_counter()
        await self.store.write(readings)
        self.metrics.write_latency.observe(time.perf_counter() - started)

    async def _isolate(self, seqs: list[int], readings: list[Reading]) -> int:
        """Bisect a refused batch: write the good halves, set single bad readings aside."""
        if len(readings) == 1:
            await asyncio.to_thread(self.buffer.set_aside, seqs[0], "store_rejected")
            self.metrics.dropped.labels(reason="store_rejected").inc()
            log.error("reading set aside, the store refuses it: %s", readings[0])
            return 0
        mid = len(readings) // 2
        written = 0
        for part_seqs, part in ((seqs[:mid], readings[:mid]), (seqs[mid:], readings[mid:])):
            try:
                await self._write(part)
            except StoreRejected:
                written += await self._isolate(part_seqs, part)
                continue
            await asyncio.to_thread(self.buffer.remove_through, part_seqs[-1])
            self._written(len(part))
            written += len(part)
        return written

    def _written(self, n: int) -> None:
        self.metrics.written.inc(n)
        self.metrics.buffer_depth.set(self.buffer.depth)
        self.backoff.reset()
        self.healthy = True
        self.last_error = None

    def _unhealthy(self, error: str) -> None:
        self.healthy = False
        self.last_error = error

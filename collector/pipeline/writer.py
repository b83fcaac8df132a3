"""The writer: drains the durable buffer into the series store in batches, with retry and backoff.

A batch is removed from the buffer only after the store accepted it. A crash in between means the
batch is written again after restart; the store keeps one point per (series, timestamp), so nothing
is duplicated. A reading the store refuses as invalid is set aside in the buffer's `rejected` table
and counted (`pumpwatch_readings_dropped_total{reason="store_rejected"}`), never retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from collector.metrics import CollectorMetrics
from collector.pipeline.buffer import DurableBuffer
from pumpwatch.backoff import Backoff
from pumpwatch.errors import StoreRejected, StoreUnavailable
from pumpwatch.readings import Reading
from pumpwatch.series import SeriesStore

log = logging.getLogger(__name__)


class BufferWriter:
    """Moves readings from the buffer to the store until cancelled."""

    def __init__(self, buffer: DurableBuffer, store: SeriesStore, metrics: CollectorMetrics,
                 *, batch_size: int = 5000, wake: asyncio.Event | None = None,
                 idle_wait: float = 0.5, linger: float = 0.0, backoff: Backoff | None = None) -> None:
        self.buffer = buffer
        self.store = store
        self.metrics = metrics
        self.batch_size = batch_size
        self.wake = wake or asyncio.Event()
        self.idle_wait = idle_wait
        self.linger = linger  # after a short batch, let more gather: fewer, fuller writes
        self.backoff = backoff or Backoff()
        self.healthy = True
        self.last_error: str | None = None

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
        seqs, readings = await asyncio.to_thread(self.buffer.peek, self.batch_size)
        if not readings:
            return 0
        try:
            await self._write(readings)
        except StoreUnavailable as err:
            self.metrics.write_errors.labels(kind="unavailable").inc()
            self._unhealthy(str(err))
            delay = self.backoff.next()
            log.warning("series store unavailable (%s); %d readings wait, retry in %.1f s",
                        err, self.buffer.depth, delay)
            await asyncio.sleep(delay)
            return 0
        except StoreRejected as err:
            self.metrics.write_errors.labels(kind="rejected").inc()
            log.warning("series store refused a batch (%s); finding the bad readings", err)
            return await self._isolate(seqs, readings)
        await asyncio.to_thread(self.buffer.remove_through, seqs[-1])
        self._written(len(readings))
        return len(readings)

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

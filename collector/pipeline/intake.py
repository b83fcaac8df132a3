"""The pipeline: validate -> durable buffer -> (live bus, alarm hooks); the writer drains the buffer.

Sources call `accept` from any thread. An intake thread takes what arrived in two windows:
- every `view_window` (5 ms) it hands the readings that came meanwhile to the event loop, for the live
  bus and the alarm hooks: an alarm never waits for a disk;
- every `commit_window` (20 ms) it commits what came meanwhile in one transaction (group commit), then
  runs the sources' `on_durable` callbacks (MQTT acks): nothing is acknowledged before it is on disk.
A commit costs the same whatever its size (an fsync, the acknowledgements' write, a wake-up of the
event loop's writer), so the longer commit window makes commits four times fewer than one per view
(`bench.intake_floor`). Should the process die between the two, the broker sends the unacknowledged
messages again and the rules see those readings a second time, which they take as they come.

Intake policy: at most `intake_limit` readings wait for their commit. A source thread (MQTT) that
finds the intake full waits, which stops it reading from the broker: backpressure, nothing lost.
The event-loop thread never waits: readings it offers to a full intake are dropped and counted
(`pumpwatch_readings_dropped_total{reason="intake_full"}`).

Catch-up policy: while the series store is reachable and `catch_up_depth` readings wait in the
durable buffer, the intake holds the MQTT acknowledgements of what it commits (the readings are on
disk) until half of them are written. A broker that honours its in-flight window sends no more
meanwhile and keeps the rest, so the writer gets the CPU instead of the intake running ahead of it
(Mosquitto 2.0.11 sends its whole queue again once acknowledgements arrive, so there the buffer
still takes a large backlog, up to its capacity); paho's network thread never blocks, so keepalives
are answered. When the store is down the buffer takes everything up to its capacity. Time held:
`pumpwatch_intake_paused_seconds_total`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from prometheus_client import Counter as PromCounter

from collector.metrics import CollectorMetrics
from collector.pipeline.buffer import BufferFull, DurableBuffer
from collector.pipeline.sink import OnDurable
from collector.pipeline.validate import Validator
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import Clock
from pumpwatch.readings import Reading

log = logging.getLogger(__name__)

ReadingsHook = Callable[[Sequence[Reading]], None]
Entry = tuple[list[Reading], OnDurable | None, Sequence[str]]  # one accept: readings, ack, delivery keys
COMMIT_CHUNK = 10_000  # readings per transaction; also the smallest buffer capacity that works
HOLD_CHECK = 0.02  # seconds between two looks at the buffer while acknowledgements are held
VIEW_WINDOW = 0.005  # seconds the first reading of a batch for the rules and live view waits for others
COMMIT_WINDOW = 0.02  # seconds the first reading of a commit waits for others (see `_intake`)


class Pipeline:
    """Implements `ReadingSink`; start it inside the event loop that should receive the batches."""

    def __init__(self, catalog: SensorCatalog, buffer: DurableBuffer, metrics: CollectorMetrics,
                 clock: Clock, *, intake_limit: int = 200_000, catch_up_depth: int = 0,
                 live: LiveBus[Sequence[Reading]] | None = None,
                 view_window: float = VIEW_WINDOW, commit_window: float = COMMIT_WINDOW) -> None:
        self.validator = Validator(catalog)
        self.buffer = buffer
        self.metrics = metrics
        self.clock = clock
        self.intake_limit = intake_limit
        self.view_window = view_window
        self.commit_window = commit_window  # never shorter than the view window in effect
        self._first_pending_at = 0.0
        self.catch_up_depth = catch_up_depth
        self.store_up: Callable[[], bool] = lambda: True  # set by the service to the writer's health
        self.live = live
        self.hooks: list[ReadingsHook] = []
        self.committed = asyncio.Event()  # set after each commit; the writer waits on it
        self._pending: deque[Entry] = deque()  # accepted, not yet handed to the event loop
        self._pending_count = 0  # readings accepted and not yet committed (pending and unsaved)
        self._unsaved: list[Entry] = []  # handed to the event loop, not yet committed (intake thread only)
        self._unsaved_since = 0.0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._held: list[OnDurable] = []  # acknowledgements held back for the writer (intake thread only)
        self._readings_in: dict[str, PromCounter] = {}  # source -> its child of `metrics.readings_in`
        self._holding_since: float | None = None
        metrics.buffer_capacity.set(buffer.capacity)
        metrics.buffer_depth.set(buffer.depth)

    # --- ReadingSink -------------------------------------------------------------------------

    def accept(self, readings: Sequence[Reading], source: str,
               on_durable: OnDurable | None = None, key: str | None = None) -> None:
        """Validate, then queue for the next commit (see the module's intake policy)."""
        self.accept_messages(readings, source, on_durable, (key,) if key is not None else ())

    def accept_messages(self, readings: Sequence[Reading], source: str, on_durable: OnDurable | None,
                        keys: Sequence[str]) -> None:
        """`accept` for the readings of several messages at once, with the delivery key of each.

        They commit in one transaction, keys included, and `on_durable` runs once after it: an MQTT
        source acknowledges a whole read from the socket with one write instead of one per message.
        """
        verdict = self.validator.judge(readings, self.clock.now())
        for reason, n in verdict.rejected.items():
            self.metrics.rejected.labels(source=source, reason=reason).inc(n)
        for quality, n in verdict.flagged.items():
            self.metrics.flagged.labels(quality=quality.name.lower()).inc(n)
        kept = verdict.kept
        if not kept:
            if on_durable is not None:
                on_durable()  # nothing to keep: acknowledge now, redelivery would not help
            return
        on_loop = self._loop is not None and self._loop_thread == threading.get_ident()
        with self._cond:
            while self._pending_count >= self.intake_limit and not self._stopping:
                if on_loop:
                    self.metrics.dropped.labels(reason="intake_full").inc(len(kept))
                    log.warning("intake full: dropped %d readings from %s", len(kept), source)
                    return
                self._cond.wait(0.5)
            if not self._pending:
                self._first_pending_at = time.monotonic()
            self._pending.append((kept, on_durable, keys))
            self._pending_count += len(kept)
            if len(self._pending) == 1 or self._pending_count >= COMMIT_CHUNK or not self.view_window:
                self._cond.notify_all()  # the intake waits out its window unless there is a chunk
        counted = self._readings_in.get(source)
        if counted is None:  # a labelled child looked up once per source: labels() costs a lock and a tuple
            counted = self.metrics.readings_in.labels(source=source.split(":", 1)[0])
            self._readings_in[source] = counted
        counted.inc(len(kept))

    def has_room(self) -> bool:
        """Whether fewer than `intake_limit` readings wait for their commit (a source may read more)."""
        return self._pending_count < self.intake_limit

    def delivered(self, key: str) -> bool:
        """Whether a message with this delivery key was committed before (a redelivery)."""
        return self.buffer.delivered(key)

    def reject(self, source: str, reason: str, detail: str) -> None:
        """Count something a source could not decode."""
        self.metrics.rejected.labels(source=source, reason=reason).inc()
        log.debug("rejected from %s (%s): %s", source, reason, detail)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the intake thread; batches are delivered to the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stopping = False
        self._thread = threading.Thread(target=self._intake, name="pumpwatch-intake", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Commit what is queued, then stop the intake thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    @property
    def intake_depth(self) -> int:
        """Readings accepted but not yet committed (some of them may be with the rules already)."""
        return self._pending_count

    # --- intake thread -----------------------------------------------------------------------

    def _intake(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._unsaved and not self._held and not self._stopping:
                    self._cond.wait()
                if not self._pending and not self._unsaved and not self._stopping:
                    self._cond.wait(HOLD_CHECK)  # acknowledgements held: look at the buffer again soon
                if not self._pending and not self._unsaved and self._stopping:
                    self._release(everything=True)
                    return
                self._gather()
                batch = list(self._pending)
                self._pending.clear()
            if batch:
                self._hand_over(batch)
            if self._unsaved and self._commit_due():
                self._commit_and_tell()
            self._release()

    def _gather(self) -> None:
        """Wait (lock held) until the readings that came are due for the event loop or for a commit.

        Readings are due for the event loop once the oldest waited `view_window`, and for a commit once
        the oldest not committed waited `commit_window`. Each hand-over costs a wake-up of the event
        loop, a live message and a pass of the rules, each commit an fsync and the acknowledgements'
        write, whatever their size: at a few thousand single-value messages a second, a few
        milliseconds turn batches of one message into batches of dozens.
        """
        while self._pending_count < COMMIT_CHUNK and not self._stopping:
            due = []
            if self._pending:
                due.append(self._first_pending_at + self.view_window)
            if self._unsaved:
                due.append(self._commit_at())
            left = min(due) - time.monotonic() if due else 0.0
            if left <= 0:
                return
            self._cond.wait(left)

    def _commit_at(self) -> float:
        """When the readings handed over are due for their commit (never before the view window)."""
        return self._unsaved_since + max(self.commit_window, self.view_window)

    def _commit_due(self) -> bool:
        return time.monotonic() >= self._commit_at() or self._stopping or self._pending_count >= COMMIT_CHUNK

    def _hand_over(self, batch: list[Entry]) -> None:
        """Give the batch's readings to the event loop (live bus, rules) now; keep them for the commit."""
        if not self._unsaved:
            self._unsaved_since = time.monotonic()
        self._unsaved += batch
        self._to_loop(self._dispatch, [r for rs, _, _ in batch for r in rs])

    def _commit_and_tell(self) -> None:
        batch, self._unsaved = self._unsaved, []
        self._commit(batch)
        with self._cond:
            self._pending_count -= sum(len(rs) for rs, _, _ in batch)
            self._cond.notify_all()
        self._held += [on_durable for _rs, on_durable, _keys in batch if on_durable is not None]
        self.metrics.buffer_depth.set(self.buffer.depth)
        self._to_loop(self.committed.set)

    def _to_loop(self, callback: Callable[..., None], *args: object) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: no one to tell
                loop.call_soon_threadsafe(callback, *args)

    def _release(self, everything: bool = False) -> None:
        """Run the held acknowledgements, unless the writer needs the intake to wait."""
        if not self._held or (self._catching_up() and not everything):
            return
        held, self._held = self._held, []
        for on_durable in held:
            try:
                on_durable()
            except Exception:  # a source's ack failing must not stop the intake
                log.exception("acknowledgement callback failed")

    def _catching_up(self) -> bool:
        """Whether acknowledgements wait (see the module's catch-up policy); starts and ends the hold."""
        depth = self.buffer.depth
        now = time.monotonic()
        if self._holding_since is None:
            if self.catch_up_depth and depth >= self.catch_up_depth and self.store_up():
                self._holding_since = now
        elif depth <= self.catch_up_depth // 2 or not self.store_up() or self._stopping:
            self.metrics.intake_paused.inc(now - self._holding_since)
            self._holding_since = None
        return self._holding_since is not None

    def _commit(self, batch: list[Entry]) -> None:
        """Append durably in chunks of whole messages, waiting (never dropping) while the buffer is full.

        A message's delivery key commits in the same transaction as all of its readings.
        """
        warned = False
        readings: list[Reading] = []
        keys: list[str] = []
        for i, (rs, _on_durable, entry_keys) in enumerate(batch):
            readings += rs
            keys += entry_keys
            if len(readings) >= COMMIT_CHUNK or i == len(batch) - 1:
                warned = self._commit_chunk(readings, keys, warned)
                readings, keys = [], []

    def _commit_chunk(self, readings: list[Reading], keys: list[str], warned: bool) -> bool:
        while True:
            try:
                self.buffer.append(readings, keys)
                return warned
            except BufferFull:
                if not warned:  # once per intake batch, not once per chunk
                    log.warning("durable buffer full (%d readings): intake waits for the writer",
                                self.buffer.depth)
                    warned = True
                time.sleep(0.1)

    def _dispatch(self, readings: list[Reading]) -> None:
        if self.live is not None:
            self.live.publish(readings)
        for hook in self.hooks:
            try:
                hook(readings)
            except Exception:  # one broken hook must not stop the others
                log.exception("readings hook %r failed", hook)

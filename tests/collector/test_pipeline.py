"""Pipeline: validation, durable buffer, group commit with acknowledgements, writer retry."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.metrics import CollectorMetrics
from collector.pipeline.buffer import BufferFull, DurableBuffer
from collector.pipeline.intake import Pipeline
from collector.pipeline.validate import Validator
from collector.pipeline.writer import BufferWriter
from pumpwatch.backoff import Backoff
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog, SensorInfo
from pumpwatch.clock import FakeClock
from pumpwatch.errors import StoreRejected, StoreUnavailable
from pumpwatch.readings import Quality, Reading
from pumpwatch.series import HistoryPoint
from pumpwatch.site import Site
from pumpwatch.sitefile import load_site

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(EXAMPLE)


@pytest.fixture
def catalog(site: Site) -> SensorCatalog:
    return SensorCatalog(site)


class RecordingStore:
    """A series store kept in a dict (one point per sensor and timestamp), that can be made to fail."""

    def __init__(self) -> None:
        self.points: dict[tuple[str, float], Reading] = {}
        self.down = False
        self.poison: set[str] = set()  # sensors whose readings the store refuses
        self.calls = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def write(self, readings: Sequence[Reading]) -> None:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("connection refused")
        if any(r.sensor in self.poison for r in readings):
            raise StoreRejected("field type conflict")
        for r in readings:
            self.points[(r.sensor, r.ts)] = r

    async def latest(self, sensors: Sequence[str] | None = None) -> dict[str, Reading]:
        out: dict[str, Reading] = {}
        for r in sorted(self.points.values(), key=lambda r: r.ts):
            out[r.sensor] = r
        return out

    async def history(self, sensor: str, start: float, end: float, step: float) -> list[HistoryPoint]:
        return []

    async def count(self, sensor: str | None = None) -> int:
        return sum(1 for (s, _t) in self.points if sensor is None or s == sensor)


def readings(n: int, start: float = 1_767_225_600.0,
             sensor: str = "harbour-view/dom-header-pressure") -> list[Reading]:
    return [Reading(sensor, start + i, 0.3 + i * 1e-4) for i in range(n)]


# --- validation ---------------------------------------------------------------------------------


def test_validator_rejects_what_cannot_be_stored_and_flags_what_is_suspect(catalog: SensorCatalog) -> None:
    now = 1_767_225_600.0
    batch = [
        Reading("harbour-view/dom-header-pressure", now, 0.42),  # good
        Reading("harbour-view/no-such-sensor", now, 1.0),  # unknown sensor
        Reading("harbour-view/dom-header-pressure", now, math.nan),
        Reading("harbour-view/dom-header-pressure", now, math.inf),
        Reading("harbour-view/dom-header-pressure", now, True),  # a bool is not a measurement
        Reading("harbour-view/dom-header-pressure", now, "0.4"),  # type: ignore[arg-type]
        Reading("harbour-view/dom-header-pressure", now + 10 * 86_400, 0.4),  # a clock ten days ahead
        Reading("harbour-view/dom-header-pressure", math.nan, 0.4),
        Reading("harbour-view/dom-header-pressure", now, 7.5),  # outside 0..1.6 MPa: kept, flagged
        Reading("harbour-view/dom-p1-switch", now, 2),  # AUTO: state name filled in
        Reading("harbour-view/dom-p1-switch", now, 9),  # no such state: kept, flagged
    ]
    verdict = Validator(catalog).judge(batch, now)
    assert dict(verdict.rejected) == {"unknown_sensor": 1, "not_finite": 2, "wrong_type": 2,
                                      "bad_timestamp": 2}
    assert [(r.sensor, r.value, r.quality, r.state) for r in verdict.kept] == [
        ("harbour-view/dom-header-pressure", 0.42, Quality.GOOD, None),
        ("harbour-view/dom-header-pressure", 7.5, Quality.OUT_OF_RANGE, None),
        ("harbour-view/dom-p1-switch", 2.0, Quality.GOOD, "AUTO"),
        ("harbour-view/dom-p1-switch", 9.0, Quality.OUT_OF_RANGE, None),
    ]
    assert verdict.flagged[Quality.OUT_OF_RANGE] == 2


class LongWayOnly:
    """The catalog as the validator sees it, with no sensor judged by its range alone (`range_only`)."""

    def __init__(self, catalog: SensorCatalog) -> None:
        self.infos: dict[str, SensorInfo] = {}
        for info in catalog:
            copy = dataclasses.replace(info)
            object.__setattr__(copy, "range_only", None)
            self.infos[info.key] = copy

    def get(self, key: str) -> SensorInfo | None:
        return self.infos.get(key)


FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1.6, 1.7, -1e-9])
VALUES = (FLOATS | st.integers(min_value=-2**70, max_value=2**70) | st.booleans() | st.none()
          | st.text(max_size=3))
STAMPS = (st.floats(min_value=-1e10, max_value=1e10) | st.sampled_from([math.nan, math.inf, -math.inf, 0.0])
          | st.integers(min_value=-5, max_value=2_000_000_000) | st.just(1_767_225_600.0 + 86_400.0))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["harbour-view/dom-header-pressure", "harbour-view/dom-p1-switch",
                                           "harbour-view/no-such-sensor"]),
                          STAMPS, VALUES, st.sampled_from(list(Quality)), st.sampled_from([None, "AUTO"])),
                max_size=20))
def test_the_validator_s_short_way_judges_as_the_long_way(
        site: Site, rows: list[tuple[str, float, object, Quality, str | None]]) -> None:
    catalog = SensorCatalog(site)
    assert catalog.get("harbour-view/dom-header-pressure").range_only is not None  # type: ignore[union-attr]
    batch = [Reading(sensor, ts, value, quality, state)  # type: ignore[arg-type]
             for sensor, ts, value, quality, state in rows]
    now = 1_767_225_600.0
    short = Validator(catalog).judge(batch, now)
    long = Validator(LongWayOnly(catalog)).judge(batch, now)  # type: ignore[arg-type]
    assert [tuple(r) for r in short.kept] == [tuple(r) for r in long.kept]
    assert [[type(x) for x in r] for r in short.kept] == [[type(x) for x in r] for r in long.kept]
    assert short.rejected == long.rejected
    assert short.flagged == long.flagged


# --- durable buffer -----------------------------------------------------------------------------


def test_buffer_keeps_readings_across_reopen_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    buffer = DurableBuffer(path, capacity=100)
    buffer.append(readings(30))
    seqs, first = buffer.peek(10)
    assert [r.ts for r in first] == [r.ts for r in readings(10)]
    buffer.remove_through(seqs[-1])
    buffer.close()
    reopened = DurableBuffer(path, capacity=100)
    assert reopened.depth == 20
    _seqs, rest = reopened.peek(100)
    assert [r.ts for r in rest] == [r.ts for r in readings(30)][10:]
    reopened.close()


def test_buffer_refuses_past_capacity_and_keeps_what_it_has(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db", capacity=50)
    buffer.append(readings(40))
    with pytest.raises(BufferFull):
        buffer.append(readings(11, start=2_000_000_000))
    assert buffer.depth == 40  # all or nothing: the refused batch left no partial rows
    buffer.append(readings(10, start=2_000_000_000))
    assert buffer.depth == 50
    buffer.close()


def test_buffer_removes_part_of_a_row_and_keeps_the_rest_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buffer = DurableBuffer(path)
    batch = readings(2500)  # three rows: 1000, 1000, 500
    buffer.append(batch)
    positions, first = buffer.peek(1500)  # all of the first row, half of the second
    assert first == batch[:1500]
    assert buffer.remove_through(positions[-1]) == 1500
    assert buffer.depth == 1000
    buffer.close()
    reopened = DurableBuffer(path)
    assert reopened.depth == 1000
    assert reopened.peek(5000)[1] == batch[1500:]
    reopened.close()


def test_buffer_sets_aside_one_reading_inside_a_row(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    batch = readings(10)
    buffer.append(batch)
    positions, _ = buffer.peek(10)
    buffer.set_aside(positions[3], "store_rejected")
    buffer.set_aside(positions[3], "store_rejected")  # twice: still one reading moved
    assert buffer.depth == 9
    assert buffer.rejected_count() == 1
    rest_positions, rest = buffer.peek(10)
    assert rest == batch[:3] + batch[4:]
    assert buffer.remove_through(rest_positions[5]) == 6  # the set-aside one is not counted again
    assert buffer.peek(10)[1] == batch[7:]
    buffer.close()


def test_buffer_keeps_state_names_qualities_and_exact_floats(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    batch = [Reading("harbour-view/dom-p1-switch", 1_767_225_600.123456789, 2.0, Quality.GOOD, "AUTO"),
             Reading("harbour-view/dom-header-pressure", 1_767_225_600.2, 0.1 + 0.2, Quality.OUT_OF_RANGE),
             Reading("harbour-view/dom-p1-switch", 1_767_225_600.3, 1.0, Quality.STALE, "手动")]
    buffer.append(batch)
    _, got = buffer.peek(10)
    assert got == batch
    assert [type(r.quality) for r in got] == [Quality] * 3
    buffer.close()


def test_buffer_adopts_readings_left_in_one_row_per_reading(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "b.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, sensor TEXT NOT NULL, "
        "ts REAL NOT NULL, value REAL NOT NULL, quality INTEGER NOT NULL, state TEXT);")
    old = readings(1200)
    db.executemany("INSERT INTO pending (sensor, ts, value, quality, state) VALUES (?, ?, ?, ?, ?)",
                   [(r.sensor, r.ts, r.value, int(r.quality), r.state) for r in old])
    db.commit()
    db.close()
    buffer = DurableBuffer(path)
    assert buffer.depth == 1200
    assert buffer.peek(5000)[1] == old
    buffer.close()


# --- pipeline -----------------------------------------------------------------------------------


async def test_accept_acknowledges_only_after_commit_and_dispatches(
        tmp_path: Path, catalog: SensorCatalog) -> None:
    buffer = DurableBuffer(tmp_path / "b.db", capacity=100_000)
    metrics = CollectorMetrics()
    live: LiveBus[Sequence[Reading]] = LiveBus()
    sub = live.subscribe("test")
    pipeline = Pipeline(catalog, buffer, metrics, FakeClock(), live=live)
    hooked: list[int] = []
    pipeline.hooks.append(lambda batch: hooked.append(len(batch)))
    depth_at_ack: list[int] = []
    acked = threading.Event()

    def on_durable() -> None:
        depth_at_ack.append(buffer.depth)
        acked.set()

    pipeline.start()
    try:
        batch = [*readings(5), Reading("harbour-view/dom-header-pressure", 1767225600.0, math.nan)]
        await asyncio.to_thread(pipeline.accept, batch, "mqtt", on_durable)
        assert await asyncio.to_thread(acked.wait, 5)
        assert depth_at_ack == [5]  # the callback ran once the five good readings were on disk
        got = await asyncio.wait_for(sub.get(), 5)
        assert len(got) == 5
        assert hooked == [5]
        assert metrics.readings_in.labels(source="mqtt")._value.get() == 5
        assert metrics.rejected.labels(source="mqtt", reason="not_finite")._value.get() == 1
    finally:
        pipeline.stop()
        buffer.close()


class CountingBuffer(DurableBuffer):
    """A durable buffer that counts its commits."""

    appends = 0

    def append(self, readings: Sequence[Reading], keys: Sequence[str] = ()) -> None:
        super().append(readings, keys)
        self.appends += 1


async def test_the_rules_and_live_view_get_readings_before_their_commit_and_the_ack_after_it(
        tmp_path: Path, catalog: SensorCatalog) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    live: LiveBus[Sequence[Reading]] = LiveBus()
    sub = live.subscribe("test")
    pipeline = Pipeline(catalog, buffer, CollectorMetrics(), FakeClock(), live=live,
                        view_window=0.005, commit_window=0.5)
    seen: list[tuple[int, int]] = []  # (readings handed over, buffer depth then)
    pipeline.hooks.append(lambda batch: seen.append((len(batch), buffer.depth)))
    acked = threading.Event()
    pipeline.start()
    try:
        await asyncio.to_thread(pipeline.accept, readings(3), "mqtt", acked.set)
        got = await asyncio.wait_for(sub.get(), 5)
        assert len(got) == 3
        assert seen == [(3, 0)]  # with the rules while nothing is on disk yet
        assert not acked.is_set()
        assert pipeline.intake_depth == 3  # accepted, not committed
        assert await asyncio.to_thread(acked.wait, 5)
        assert buffer.depth == 3  # acknowledged once on disk
        assert pipeline.intake_depth == 0
        await asyncio.wait_for(pipeline.committed.wait(), 5)  # the writer hears of the commit
    finally:
        pipeline.stop()
        buffer.close()


async def test_commits_gather_several_hand_overs_to_the_rules(tmp_path: Path, catalog: SensorCatalog) -> None:
    buffer = CountingBuffer(tmp_path / "b.db")
    pipeline = Pipeline(catalog, buffer, CollectorMetrics(), FakeClock(),
                        view_window=0.002, commit_window=0.2)
    handed: list[int] = []
    pipeline.hooks.append(lambda batch: handed.append(len(batch)))
    acks: list[int] = []
    pipeline.start()
    try:
        for i in range(10):  # ten messages 20 ms apart: ten hand-overs, one or two commits
            await asyncio.to_thread(pipeline.accept, readings(2, start=1_767_225_600.0 + 10 * i), "mqtt",
                                    functools.partial(acks.append, i))
            await asyncio.sleep(0.02)
        deadline = asyncio.get_running_loop().time() + 5
        while len(acks) < 10 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
    finally:
        pipeline.stop()
    assert sorted(acks) == list(range(10))
    assert buffer.depth == 20
    assert sum(handed) == 20
    assert len(handed) >= 5  # the rules did not wait for the commits
    assert 1 <= buffer.appends <= 3
    buffer.close()


async def test_stopping_commits_and_acknowledges_what_the_rules_already_have(
        tmp_path: Path, catalog: SensorCatalog) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    pipeline = Pipeline(catalog, buffer, CollectorMetrics(), FakeClock(),
                        view_window=0.001, commit_window=60.0)
    handed: list[int] = []
    pipeline.hooks.append(lambda batch: handed.append(len(batch)))
    acked = threading.Event()
    pipeline.start()
    await asyncio.to_thread(pipeline.accept, readings(4), "mqtt", acked.set)
    deadline = asyncio.get_running_loop().time() + 5
    while not handed and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)
    assert handed == [4]
    assert buffer.depth == 0  # a minute before its commit is due
    await asyncio.to_thread(pipeline.stop)
    assert acked.is_set()
    assert buffer.depth == 4
    buffer.close()


async def test_a_message_with_nothing_acceptable_is_acknowledged_at_once(
        tmp_path: Path, catalog: SensorCatalog) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    pipeline = Pipeline(catalog, buffer, CollectorMetrics(), FakeClock())
    acks: list[str] = []
    pipeline.accept([Reading("ghost", 1.0, 1.0)], "mqtt", lambda: acks.append("ack"))
    assert acks == ["ack"]
    assert buffer.depth == 0
    buffer.close()


async def test_event_loop_thread_never_blocks_on_a_full_intake(
        tmp_path: Path, catalog: SensorCatalog) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    metrics = CollectorMetrics()
    pipeline = Pipeline(catalog, buffer, metrics, FakeClock(), intake_limit=1000)
    pipeline.start()
    with pipeline._cond:  # re-entrant: the intake thread cannot take the held batch meanwhile
        pipeline._pending.append((readings(1000), None, ()))
        pipeline._pending_count = 1000
        pipeline._cond.notify_all()  # the intake wakes once we let go
        pipeline.accept(readings(10, start=1_767_229_000.0), "modbus:plc-dom")  # must not block
        assert metrics.dropped.labels(reason="intake_full")._value.get() == 10
        assert metrics.readings_in.labels(source="modbus")._value.get() == 0
    deadline = asyncio.get_running_loop().time() + 5
    while buffer.depth < 1000 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    pipeline.accept(readings(10, start=1_767_229_000.0), "modbus:plc-dom")  # room again: taken
    assert metrics.readings_in.labels(source="modbus")._value.get() == 10
    pipeline.stop()
    buffer.close()


async def test_acknowledgements_wait_for_a_writer_behind_a_reachable_store(
        tmp_path: Path, catalog: SensorCatalog) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    buffer.append(readings(20_000))
    metrics = CollectorMetrics()
    pipeline = Pipeline(catalog, buffer, metrics, FakeClock(), catch_up_depth=10_000)
    store_up = True
    pipeline.store_up = lambda: store_up
    acked = threading.Event()
    pipeline.start()
    try:
        await asyncio.to_thread(pipeline.accept, readings(5, start=1_767_300_000.0), "mqtt", acked.set)
        deadline = asyncio.get_running_loop().time() + 5
        while buffer.depth < 20_005 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert buffer.depth == 20_005  # on disk, never refused: only the acknowledgement waits
        assert not await asyncio.to_thread(acked.wait, 0.3)
        positions, _ = buffer.peek(12_000)
        buffer.remove_through(positions[-1])  # 8,005 left: still above half of 10,000
        assert not await asyncio.to_thread(acked.wait, 0.3)
        positions, _ = buffer.peek(4000)
        buffer.remove_through(positions[-1])  # 4,005 left: the writer has caught up
        assert await asyncio.to_thread(acked.wait, 5)
        assert metrics.intake_paused._value.get() > 0.5

        store_up = False  # the store is down: the buffer takes everything, acknowledged at once
        buffer.append(readings(20_000, start=1_767_400_000.0))
        acked.clear()
        await asyncio.to_thread(pipeline.accept, readings(5, start=1_767_500_000.0), "mqtt", acked.set)
        assert await asyncio.to_thread(acked.wait, 5)
    finally:
        pipeline.stop()
        buffer.close()


async def test_source_thread_waits_while_the_buffer_is_full_and_loses_nothing(
        tmp_path: Path, catalog: SensorCatalog) -> None:
    buffer = DurableBuffer(tmp_path / "b.db", capacity=10_000)
    store = RecordingStore()
    metrics = CollectorMetrics()
    pipeline = Pipeline(catalog, buffer, metrics, FakeClock(), intake_limit=2000)
    writer = BufferWriter(buffer, store, metrics, batch_size=3000, wake=pipeline.committed,
                          idle_wait=0.05)
    pipeline.start()
    store.down = True
    writer.backoff = Backoff(first=0.05, cap=0.1)
    writer_task = asyncio.create_task(writer.run())
    total = 30_000  # three times what the buffer holds

    def produce() -> None:
        for i in range(0, total, 1000):
            pipeline.accept(readings(1000, start=1_767_225_600.0 + i), "mqtt")

    producer = asyncio.create_task(asyncio.to_thread(produce))
    await asyncio.sleep(0.5)
    assert not producer.done()  # blocked by backpressure, not dropping
    assert buffer.depth <= 10_000
    store.down = False
    await asyncio.wait_for(producer, 30)
    deadline = asyncio.get_running_loop().time() + 30
    while await store.count() < total and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    writer_task.cancel()
    pipeline.stop()
    assert await store.count() == total
    assert metrics.dropped.labels(reason="intake_full")._value.get() == 0
    buffer.close()


# --- writer -------------------------------------------------------------------------------------


async def test_writer_retries_until_the_store_is_back(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    buffer.append(readings(12_000))
    store = RecordingStore()
    store.down = True
    metrics = CollectorMetrics()
    writer = BufferWriter(buffer, store, metrics, batch_size=5000,
                          backoff=Backoff(first=0.01, cap=0.02))
    assert await writer.drain_once() == 0
    assert await writer.drain_once() == 0
    assert not writer.healthy
    assert writer.last_error == "connection refused"
    assert buffer.depth == 12_000
    assert metrics.write_errors.labels(kind="unavailable")._value.get() == 2
    store.down = False
    while buffer.depth:
        await writer.drain_once()
    assert await store.count() == 12_000
    assert writer.healthy
    assert metrics.written._value.get() == 12_000
    buffer.close()


async def test_a_trickle_of_small_commits_is_written_in_a_few_fuller_writes(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    store = RecordingStore()
    wake = asyncio.Event()
    writer = BufferWriter(buffer, store, CollectorMetrics(), batch_size=5000, wake=wake, linger=0.3)
    running = asyncio.create_task(writer.run())
    for i in range(20):  # 20 devices polled one after another, 5 readings each, 20 ms apart
        buffer.append(readings(5, start=1_767_225_600.0 + i * 10))
        wake.set()
        await asyncio.sleep(0.02)
    while buffer.depth:
        await asyncio.sleep(0.05)
    running.cancel()
    assert await store.count() == 100
    assert store.calls <= 4  # one write per 0.3 s at most, not one per commit
    buffer.close()


async def test_writer_sets_aside_only_the_readings_the_store_refuses(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    good = readings(100)
    bad = [Reading("harbour-view/dom-p1-current", 1_767_225_650.5, 3.0)]
    buffer.append(good[:50] + bad + good[50:])
    store = RecordingStore()
    store.poison = {"harbour-view/dom-p1-current"}
    metrics = CollectorMetrics()
    writer = BufferWriter(buffer, store, metrics, batch_size=1000)
    assert await writer.drain_once() == 100
    assert buffer.depth == 0
    assert buffer.rejected_count() == 1
    assert await store.count() == 100
    assert metrics.dropped.labels(reason="store_rejected")._value.get() == 1
    buffer.close()


async def test_rewriting_after_a_crash_duplicates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buffer = DurableBuffer(path)
    buffer.append(readings(100))
    store = RecordingStore()
    _seqs, batch = buffer.peek(100)
    await store.write(batch)  # written, then the process died before removing the batch
    buffer.close()
    reopened = DurableBuffer(path)
    writer = BufferWriter(reopened, store, CollectorMetrics())
    assert await writer.drain_once() == 100
    assert await store.count() == 100
    reopened.close()


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(first=1.0, cap=8.0, jitter=0.2, rng=lambda: 1.0)
    assert [round(backoff.next(), 6) for _ in range(6)] == [1.2, 2.4, 4.8, 9.6, 9.6, 9.6]
    backoff.reset()
    low = Backoff(first=1.0, cap=8.0, jitter=0.2, rng=lambda: 0.0)
    assert round(low.next(), 6) == 0.8
    assert round(backoff.next(), 6) == 1.2


async def test_a_delivery_key_commits_with_its_readings_and_is_recognised_later(
        tmp_path: Path, catalog: SensorCatalog) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    pipeline = Pipeline(catalog, buffer, CollectorMetrics(), FakeClock())
    pipeline.start()
    acked = threading.Event()
    assert not pipeline.delivered("17:abc")
    pipeline.accept(readings(3), "mqtt", on_durable=acked.set, key="17:abc")
    await asyncio.to_thread(acked.wait, 5)
    assert pipeline.delivered("17:abc")
    assert not pipeline.delivered("18:abc")
    pipeline.stop()
    buffer.close()
    reopened = DurableBuffer(tmp_path / "b.db")  # the record survives a restart, as the broker's does
    assert reopened.delivered("17:abc")
    reopened.close()


async def test_several_messages_commit_together_with_their_keys_and_are_acknowledged_once(
        tmp_path: Path, catalog: SensorCatalog) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    pipeline = Pipeline(catalog, buffer, CollectorMetrics(), FakeClock())
    pipeline.start()
    acks: list[int] = []
    acked = threading.Event()

    def on_durable() -> None:
        acks.append(buffer.depth)
        acked.set()

    try:
        keys = ["1:aa", "2:bb", "3:cc"]
        batch = [*readings(4), Reading("ghost", 1_767_225_600.0, 1.0)]  # one reading refused
        await asyncio.to_thread(pipeline.accept_messages, batch, "mqtt", on_durable, keys)
        assert await asyncio.to_thread(acked.wait, 5)
        assert acks == [4]  # once, after all four good readings were on disk
        assert all(pipeline.delivered(key) for key in keys)
    finally:
        pipeline.stop()
        buffer.close()


def test_only_the_newest_delivery_keys_are_kept(tmp_path: Path) -> None:
    from collector.pipeline.buffer import DELIVERED_KEEP

    buffer = DurableBuffer(tmp_path / "b.db")
    for batch in range(4):
        buffer.append([], [f"{batch}:{i}" for i in range(DELIVERED_KEEP // 2)])
    assert buffer.delivered(f"3:{DELIVERED_KEEP // 2 - 1}")
    assert not buffer.delivered("0:0")  # pruned: bounded, oldest first
    buffer.close()

"""The writer on an edge: fresh readings first after an outage, the same batch again, no long waits."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from collector.metrics import CollectorMetrics
from collector.pipeline.buffer import DurableBuffer
from collector.pipeline.writer import BufferWriter, Reachable
from collector.stores.influx import InfluxStore
from pumpwatch.backoff import Backoff
from pumpwatch.errors import StoreUnavailable
from pumpwatch.readings import Reading
from pumpwatch.series import HistoryPoint
from tests.support.services import InfluxDB, free_ports


class LinkStore:
    """A series store that records each batch it takes, and can be down, reachable or not.

    Stands in for the uplink where only the writer's choices are under test; the uplink itself runs
    against a real broker in test_edge_uplink.py.
    """

    def __init__(self) -> None:
        self.batches: list[list[float]] = []
        self.tries: list[list[float]] = []
        self.down = False
        self.back = False  # what `reachable()` says while down
        self.probes = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def reachable(self) -> bool:
        self.probes += 1
        return not self.down or self.back

    async def write(self, readings: Sequence[Reading]) -> None:
        self.tries.append([r.value for r in readings])
        if self.down:
            raise StoreUnavailable("link down")
        self.batches.append([r.value for r in readings])

    async def latest(self, sensors: Sequence[str] | None = None) -> dict[str, Reading]:
        return {}

    async def history(self, sensor: str, start: float, end: float, step: float) -> list[HistoryPoint]:
        return []

    async def count(self, sensor: str | None = None) -> int:
        return sum(len(b) for b in self.batches)


def _fill(buffer: DurableBuffer, rows: int, size: int) -> None:
    for row in range(rows):
        buffer.append([Reading("s", 1_700_000_000.0 + row * size + i, float(row * size + i))
                       for i in range(size)])


async def test_after_an_outage_fresh_rows_go_first_and_the_backlog_follows(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    store = LinkStore()
    writer = BufferWriter(buffer, store, CollectorMetrics(), batch_size=250, fresh_first=True)
    _fill(buffer, 10, 100)  # a backlog of 1000 readings in rows of 100
    while await writer.drain_once():
        pass
    firsts = [batch[0] for batch in store.batches]
    assert store.batches[0] == [float(i) for i in range(800, 1000)]  # the newest whole rows that fit
    assert store.batches[1] == [float(i) for i in range(250)]  # then the oldest
    assert firsts == [800.0, 0.0, 600.0, 250.0, 500.0]  # alternating while more than a batch waits
    stored = sorted(v for batch in store.batches for v in batch)
    assert stored == [float(i) for i in range(1000)]  # both ends stored, each reading once
    assert buffer.depth == 0
    buffer.close()


async def test_without_a_backlog_the_writer_goes_oldest_first(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    store = LinkStore()
    writer = BufferWriter(buffer, store, CollectorMetrics(), batch_size=250, fresh_first=True)
    _fill(buffer, 2, 100)
    await writer.drain_once()
    assert store.batches == [[float(i) for i in range(200)]]
    buffer.close()


async def test_a_batch_the_link_did_not_take_is_sent_again_as_it_was(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    store = LinkStore()
    writer = BufferWriter(buffer, store, CollectorMetrics(), batch_size=250, fresh_first=True,
                          backoff=Backoff(first=0.01, cap=0.01))
    _fill(buffer, 10, 100)
    store.down = True
    assert await writer.drain_once() == 0
    _fill(buffer, 1, 100)  # a newer row arrives meanwhile
    store.down = False
    await writer.drain_once()
    assert store.tries[0] == store.tries[1]  # the same readings: the same batch number upstream
    assert store.batches == [store.tries[0]]
    assert store.tries[0] == [float(i) for i in range(800, 1000)]  # not the newer row that came meanwhile
    assert writer.healthy
    buffer.close()


async def test_a_store_that_comes_back_is_written_at_once_not_after_the_backoff(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    store = LinkStore()
    # A pause of an hour: only the probe can end it within this test's time.
    writer = BufferWriter(buffer, store, CollectorMetrics(), batch_size=100,
                          backoff=Backoff(first=3600, cap=3600), probe_interval=0.02)
    _fill(buffer, 3, 100)
    store.down = True
    task = asyncio.create_task(writer.run())
    try:
        while store.probes < 2:  # the writer failed and its probe found the store away
            await asyncio.sleep(0.01)
        store.down = False  # back: the next probe sees it, and the write goes through
        async with asyncio.timeout(30):
            while buffer.depth:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sum(len(b) for b in store.batches) == 300
    buffer.close()


async def test_a_store_reachable_but_refusing_writes_gets_the_whole_pause(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    store = LinkStore()
    store.down, store.back = True, True  # answers the probe, fails the write
    writer = BufferWriter(buffer, store, CollectorMetrics(), batch_size=100,
                          backoff=Backoff(first=0.3, cap=0.3, jitter=0), probe_interval=0.01)
    _fill(buffer, 1, 100)
    await writer.drain_once()
    assert len(store.tries) == 1  # not a write per probe
    buffer.close()


async def test_influxdb_answers_the_writers_probe_only_while_it_runs(influxdb: InfluxDB) -> None:
    up = InfluxStore(influxdb.url, "probe_test", create_database=False, timeout=2)
    (port,) = free_ports(1)
    down = InfluxStore(f"http://127.0.0.1:{port}", "probe_test", timeout=2)
    try:
        assert isinstance(up, Reachable)
        assert await up.reachable()
        assert not await down.reachable()
    finally:
        await up.close()
        await down.close()

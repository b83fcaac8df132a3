"""The durable buffer on an edge: full policies, the newest end, backlog age, edge batch keys."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from collector.pipeline import buffer as buffer_module
from collector.pipeline.buffer import DELIVERED_KEEP, BufferFull, DurableBuffer, edge_batch_key
from pumpwatch.readings import Reading


def _readings(start: int, count: int) -> list[Reading]:
    return [Reading(f"s{i % 7}", 1_700_000_000.0 + i, float(i)) for i in range(start, start + count)]


def _values(buffer: DurableBuffer) -> list[float]:
    return [r.value for r in buffer.peek(10**6)[1]]


def test_drop_oldest_keeps_the_newest_and_counts_what_went_across_restarts(tmp_path: Path) -> None:
    told: list[int] = []
    buffer = DurableBuffer(tmp_path / "b.db", capacity=100, when_full="drop_oldest", on_dropped=told.append)
    for start in range(0, 150, 30):  # 150 readings into room for 100
        buffer.append(_readings(start, 30))
    assert buffer.depth == 100
    assert _values(buffer) == [float(i) for i in range(50, 150)]
    assert buffer.dropped == 50 == sum(told)
    buffer.close()
    again = DurableBuffer(tmp_path / "b.db", capacity=100, when_full="drop_oldest")
    assert (again.depth, again.dropped) == (100, 50)
    again.append(_readings(150, 10))
    assert again.dropped == 60
    assert _values(again)[0] == 60.0
    again.close()


def test_drop_oldest_takes_part_of_a_row_and_skips_what_the_store_set_aside(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db", capacity=100, when_full="drop_oldest")
    buffer.append(_readings(0, 100))  # one row of 100
    positions, _ = buffer.peek(3)
    buffer.set_aside(positions[1], "test")  # value 1.0 is no longer waiting
    assert buffer.depth == 99
    buffer.append(_readings(100, 4))  # 3 over capacity: 0, 2, 3 go (1 was set aside already)
    assert buffer.depth == 100
    assert _values(buffer)[:2] == [4.0, 5.0]
    assert buffer.dropped == 3
    buffer.close()


def test_refuse_newest_keeps_what_it_has_and_counts_what_did_not_fit(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db", capacity=50, when_full="refuse_newest")
    buffer.append(_readings(0, 40))
    buffer.append(_readings(40, 30), keys=["k1"])
    assert buffer.depth == 50
    assert _values(buffer) == [float(i) for i in range(50)]
    assert buffer.dropped == 20
    assert buffer.delivered("k1")  # the message counts as taken: sending it again would not help
    buffer.close()


def test_the_centre_waits_when_full(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db", capacity=50)
    buffer.append(_readings(0, 50))
    with pytest.raises(BufferFull):
        buffer.append(_readings(50, 1))
    assert buffer.dropped == 0
    with pytest.raises(ValueError, match="when_full"):
        DurableBuffer(tmp_path / "c.db", when_full="drop_newest")
    buffer.close()


def test_the_newest_end_gives_whole_rows_and_both_ends_meet_without_loss(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    for start in range(0, 100, 10):
        buffer.append(_readings(start, 10))  # ten rows of ten
    positions, oldest = buffer.peek(15)
    buffer.remove_through(positions[-1])  # the first row and a half
    rows, newest = buffer.peek_newest(25)  # whole rows only: the last two
    assert [r.value for r in newest] == [float(i) for i in range(80, 100)]
    assert buffer.remove_rows(rows) == 20
    rows, newest = buffer.peek_newest(1)  # at least one row even when it is larger than asked
    assert [r.value for r in newest] == [float(i) for i in range(70, 80)]
    buffer.remove_rows(rows)
    rows, rest = buffer.peek_newest(1000)  # the rest, the part-taken row from where it was taken
    assert [r.value for r in rest] == [float(i) for i in range(15, 70)]
    assert buffer.remove_rows([*rows, 9999]) == 55
    assert buffer.depth == 0
    assert [r.value for r in oldest] == [float(i) for i in range(15)]
    buffer.close()


def test_the_backlog_age_comes_from_the_oldest_waiting_reading(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    assert buffer.oldest_ts() is None
    buffer.append(_readings(0, 10))
    positions, _ = buffer.peek(3)
    buffer.set_aside(positions[2], "test")
    buffer.remove_through(positions[1])
    assert buffer.oldest_ts() == 1_700_000_003.0  # 0 and 1 written, 2 set aside
    buffer.close()


def test_edge_batch_keys_outlive_a_flood_of_mqtt_keys_and_a_restart(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    buffer.append(_readings(0, 1), keys=[edge_batch_key("e-1", 41), edge_batch_key("e:2", 7)])
    for chunk in range(0, int(DELIVERED_KEEP * 1.5), 5000):
        buffer.append([], keys=[f"{n}:digest" for n in range(chunk, chunk + 5000)])
    buffer.close()
    again = DurableBuffer(tmp_path / "b.db")
    assert not again.delivered("0:digest")  # the oldest MQTT keys were pruned
    assert again.delivered(edge_batch_key("e-1", 41))
    assert again.delivered(edge_batch_key("e:2", 7))  # an edge id with a colon is still one edge
    assert not again.delivered(edge_batch_key("e-1", 42))
    assert not again.delivered(edge_batch_key("e-2", 41))
    again.close()


def _from_the_file(path: Path) -> tuple[list[int], list[Reading]]:
    """What a buffer opened afresh on the same file (nothing in memory) gives."""
    fresh = DurableBuffer(path)
    try:
        return fresh.peek(10**6)
    finally:
        fresh.close()


def test_rows_kept_in_memory_give_what_the_file_gives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buffer_module, "RECENT_READINGS", 50)  # the older rows are forgotten in memory
    buffer = DurableBuffer(tmp_path / "b.db")
    for start in range(0, 120, 20):
        buffer.append(_readings(start, 20))
    assert buffer.peek(10**6) == _from_the_file(tmp_path / "b.db")
    positions, readings = buffer.peek(35)
    assert [r.value for r in readings] == [float(i) for i in range(35)]
    buffer.remove_through(positions[-1])  # part of a row that is in memory, part of one that is not
    assert buffer.peek(10**6) == _from_the_file(tmp_path / "b.db")
    assert _values(buffer) == [float(i) for i in range(35, 120)]
    newest_rows, newest = buffer.peek_newest(30)
    assert [r.value for r in newest] == [float(i) for i in range(100, 120)]
    buffer.remove_rows(newest_rows)
    assert buffer.peek(10**6) == _from_the_file(tmp_path / "b.db")
    assert buffer.depth == 65
    buffer.close()


def test_a_reading_set_aside_in_a_row_in_memory_is_not_given_again(tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    buffer.append(_readings(0, 10))
    positions, _ = buffer.peek(10)
    buffer.set_aside(positions[3], "store_rejected")
    assert _values(buffer) == [float(i) for i in range(10) if i != 3]
    assert buffer.peek(10**6) == _from_the_file(tmp_path / "b.db")
    assert [r.value for r in buffer.peek_newest(100)[1]] == [float(i) for i in range(10) if i != 3]
    buffer.close()


def test_forgetting_what_the_store_has_leaves_every_other_commit_waiting_for_the_disk(
        tmp_path: Path) -> None:
    buffer = DurableBuffer(tmp_path / "b.db")
    full = 2  # SQLite's synchronous=FULL
    buffer.append(_readings(0, 30))
    positions, _ = buffer.peek(10)
    assert buffer.remove_through(positions[-1]) == 10
    assert buffer._db.execute("PRAGMA synchronous").fetchone()[0] == full
    rows, newest = buffer.peek_newest(1)
    assert buffer.remove_rows(rows) == len(newest) == 20
    assert buffer._db.execute("PRAGMA synchronous").fetchone()[0] == full
    buffer.append(_readings(30, 5))
    # a removal that fails rolls back and leaves FULL in force
    with pytest.raises(sqlite3.Error), buffer._lock, buffer._forgetting():
        buffer._db.execute("DELETE FROM no_such_table")
    assert buffer._db.execute("PRAGMA synchronous").fetchone()[0] == full
    buffer.close()
    reopened = DurableBuffer(tmp_path / "b.db")
    assert _values(reopened) == [float(i) for i in range(30, 35)]
    reopened.close()

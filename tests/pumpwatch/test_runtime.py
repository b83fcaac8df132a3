"""The heap after start-up: the deployment frozen out of the collector's scans, and freed after a reload."""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Iterator

import pytest

from pumpwatch.runtime import SWITCH_INTERVAL, favour_event_loop, settle_heap


class Node:
    """Something with a reference cycle, as parsed models and catalogues hold."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_what_is_there_at_the_settle_is_left_out_of_later_collections() -> None:
    kept = Node()
    settle_heap()
    assert gc.get_freeze_count() > 0
    assert all(obj is not kept for obj in gc.get_objects())  # no generation holds it: never walked again
    made_after = Node()
    assert any(obj is made_after for obj in gc.get_objects())


def test_a_replaced_estates_objects_are_freed_by_the_next_settle() -> None:
    replaced = Node()
    gone = weakref.ref(replaced)
    settle_heap()
    del replaced  # a reload dropped it: a cycle, so only a collection frees it, and frozen it is not walked
    gc.collect()
    assert gone() is not None
    settle_heap()  # the reload's settle thaws, collects and freezes again
    assert gone() is None


def test_the_api_hands_the_interpreter_lock_over_sooner() -> None:
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)  # CPython's default
        favour_event_loop()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        assert SWITCH_INTERVAL <= 0.001
    finally:
        sys.setswitchinterval(before)

"""How a long-running role's interpreter is set: its heap after start-up and its thread switching.

**The heap.** A role loads every estate's site file, catalogue, alarm rules and plans once and keeps them:
at 200 estates several hundred thousand objects. CPython's full collection walks every tracked object,
and the readings passing through (tens of thousands a second) trigger one every few seconds; with the
deployment in it each took 100-500 ms of the event loop, the whole of the monitoring centre's
slowest answers (bench/README.md, "Many estates"). `settle_heap` collects once and freezes what is left
(`gc.freeze`), so later collections walk only what was made since. After a reload it thaws, collects the
estates that were replaced, and freezes again (one full collection per reload).

**Thread switching.** Every role's event loop shares the interpreter lock with threads: the API's with the
feed's network thread and the database workers, the collector's with the MQTT session's thread and the
intake thread. The loop gives the lock up at every system call (each send, each poll) and, by default,
gets it back only when the thread holding it has run for 5 ms: at hundreds of system calls a second an
answer waited behind the feed's decoding, and an alarm event behind the intake (alarm latency p99 328 ms
at 20,000 readings/s in the collector's own process, 73-100 ms with 0.5 ms; bench/README.md). The cost
is a little CPU (about 1-2 µs per reading at 50 values per message, 5-7 %). `favour_event_loop` shortens
the interval to `SWITCH_INTERVAL`, in every role.
"""

from __future__ import annotations

import gc
import logging
import sys
import time

log = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.0005  # seconds a thread runs before one waiting for the interpreter lock gets it


def settle_heap() -> float:
    """Collect, then freeze every object that is left out of later collections; the seconds it took."""
    started = time.perf_counter()
    gc.unfreeze()  # what an earlier settle froze is judged again: replaced estates are freed now
    gc.collect()
    gc.freeze()
    took = time.perf_counter() - started
    log.info("heap settled: %d objects frozen in %.3f s", gc.get_freeze_count(), took)
    return took


def favour_event_loop() -> None:
    """Hand the interpreter lock to a waiting thread after `SWITCH_INTERVAL` instead of 5 ms."""
    sys.setswitchinterval(SWITCH_INTERVAL)

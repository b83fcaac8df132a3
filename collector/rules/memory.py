"""The alarms a collector has raised, kept on disk so a restart can clear what ended meanwhile.

Without it a collector restarted after an alarm's condition ended would never announce the clear:
its engine would start with no alarms, and the raised alarm would stay open in the API forever.
The file holds the last announced event of each raised alarm (JSON, replaced atomically on every
raise, escalation, de-escalation and clear; a few writes an hour, never per reading).

Where the write happens: with a `MemorySaver` (the collector service has one for all its estates),
on the saver's own thread, so the file's fsync (1-10 ms, more on a busy disk) never holds up the
event loop and the event is announced without waiting for it; several changes made meanwhile are one
write of the newest state. The engine announces an event right after `remember`, so a crash between
the two can lose the memory of that one change, just as it can lose an event still in the MQTT
client's queue; the saver writes what it holds before the collector stops (`close`). Without a saver
(tests, tools) the file is written before `remember` returns.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.wire import alarm_event_from_json, alarm_event_json

log = logging.getLogger(__name__)

_LIFECYCLE = {AlarmAction.RAISED, AlarmAction.ESCALATED, AlarmAction.DEESCALATED, AlarmAction.CLEARED}


class AlarmMemory:
    """Raised alarms by key in a JSON file; a broken file is set aside, never fatal.

    One file per estate; `estate` is given to the alarms of a file written before estates.
    """

    def __init__(self, path: Path, estate: str = "", saver: MemorySaver | None = None) -> None:
        self.path = path
        self.estate = estate
        self.saver = saver
        self._lock = threading.Lock()  # `raised` changes on the event loop and is written on the saver's
        self.raised: dict[AlarmKey, AlarmEvent] = self._load()

    def remember(self, event: AlarmEvent) -> None:
        """Follow one announced event; the file changes only when an alarm's lifecycle does."""
        if event.action not in _LIFECYCLE:
            return
        with self._lock:
            if event.action is AlarmAction.CLEARED:
                if self.raised.pop(event.key, None) is None:
                    return
            else:
                self.raised[event.key] = event
        if self.saver is not None:
            self.saver.save(self)
        else:
            self.write()

    def write(self) -> None:
        """Replace the file with the alarms raised now (fsync, then an atomic rename)."""
        with self._lock:
            events = list(self.raised.values())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump([alarm_event_json(event) for event in events], out, ensure_ascii=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)

    def _load(self) -> dict[AlarmKey, AlarmEvent]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            events = [alarm_event_from_json(item) for item in json.loads(text)]
        except (ValueError, KeyError, TypeError) as err:
            aside = self.path.with_suffix(".broken")
            os.replace(self.path, aside)
            log.warning("alarm memory %s is unreadable (%s); set aside as %s, starting with no alarms",
                        self.path, err, aside)
            return {}
        if self.estate:
            events = [event if event.key.estate else event.in_estate(self.estate) for event in events]
        return {event.key: event for event in events}



class MemorySaver:
    """Writes alarm memories on a thread of its own (see the module's note); one for many memories."""

    def __init__(self) -> None:
        self._dirty: dict[int, AlarmMemory] = {}  # memories to write, each once however often it changed
        self._writing = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.failures = 0  # writes that failed (a full disk); the next change writes the file again

    def save(self, memory: AlarmMemory) -> None:
        """Write `memory` soon (its state at the time of writing); written at once once closed."""
        with self._cond:
            if self._closed:
                closed = True
            else:
                closed = False
                self._dirty[id(memory)] = memory
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="pumpwatch-alarm-memory",
                                                    daemon=True)
                    self._thread.start()
                self._cond.notify_all()
        if closed:
            self._write(memory)

    def flush(self) -> None:
        """Return once every memory changed before the call is on disk."""
        with self._cond:
            while self._dirty or self._writing:
                self._cond.wait()

    def close(self) -> None:
        """Write what waits, then stop the thread; later saves write at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._closed:
                    self._cond.wait()
                if not self._dirty:
                    return
                batch = list(self._dirty.values())
                self._dirty.clear()
                self._writing = len(batch)
            for memory in batch:
                self._write(memory)
            with self._cond:
                self._writing = 0
                self._cond.notify_all()

    def _write(self, memory: AlarmMemory) -> None:
        try:
            memory.write()
        except OSError:  # a full disk must not stop the saver; the next change writes it again
            self.failures += 1
            log.exception("could not write the alarm memory %s", memory.path)

"""The alarms a collector has raised, kept on disk so a restart can clear what ended meanwhile.

Without it a collector restarted after an alarm's condition ended would never announce the clear:
its engine would start with no alarms, and the raised alarm would stay open in the API forever.
The file holds the last announced event of each raised alarm (JSON, replaced atomically on every
raise, escalation, de-escalation and clear; a few writes an hour, never per reading).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.wire import alarm_event_from_json, alarm_event_json

log = logging.getLogger(__name__)

_LIFECYCLE = {AlarmAction.RAISED, AlarmAction.ESCALATED, AlarmAction.DEESCALATED, AlarmAction.CLEARED}


class AlarmMemory:
    """Raised alarms by key in a JSON file; a broken file is set aside, never fatal.

    One file per estate; `estate` is given to the alarms of a file written before estates.
    """

    def __init__(self, path: Path, estate: str = "") -> None:
        self.path = path
        self.estate = estate
        self.raised: dict[AlarmKey, AlarmEvent] = self._load()

    def remember(self, event: AlarmEvent) -> None:
        """Follow one announced event; the file changes only when an alarm's lifecycle does."""
        if event.action not in _LIFECYCLE:
            return
        if event.action is AlarmAction.CLEARED:
            if self.raised.pop(event.key, None) is None:
                return
        else:
            self.raised[event.key] = event
        self._save()

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

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump([alarm_event_json(event) for event in self.raised.values()], out, ensure_ascii=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)

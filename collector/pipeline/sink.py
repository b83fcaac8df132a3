"""What sources hand their readings to: the pipeline, or anything that behaves like it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from pumpwatch.readings import Reading

OnDurable = Callable[[], None]


class ReadingSink(Protocol):
    """Takes readings from any thread. `accept` may block while the intake is full (backpressure)."""

    def accept(self, readings: Sequence[Reading], source: str,
               on_durable: OnDurable | None = None, key: str | None = None) -> None:
        """Validate and buffer readings; `on_durable` runs (on another thread) once they are on disk.

        Readings that fail validation are counted and left out; `on_durable` still runs once the
        rest are durable, so a message with one bad value is acknowledged exactly once. `key`, if
        given, is committed with the readings (see `delivered`).
        """
        ...

    def delivered(self, key: str) -> bool:
        """Whether readings committed with this key are already in the buffer's record."""
        ...

    def reject(self, source: str, reason: str, detail: str) -> None:
        """Count a value or message that could not be decoded at all (reason is a metric label)."""
        ...


@runtime_checkable
class MessageSink(ReadingSink, Protocol):
    """A sink that also takes the readings of several messages in one call (the pipeline does)."""

    def accept_messages(self, readings: Sequence[Reading], source: str, on_durable: OnDurable | None,
                        keys: Sequence[str]) -> None:
        """`accept` for several messages: readings and delivery keys commit together, then `on_durable`."""
        ...


@runtime_checkable
class PacedSink(Protocol):
    """A sink that says when it is full, so a source can stop reading instead of blocking in `accept`."""

    def has_room(self) -> bool:
        """Whether more readings are taken now without waiting."""
        ...

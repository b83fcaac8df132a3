"""The in-process live bus: readings and alarm events fanned out to subscribers.

Each subscriber has a bounded queue. Policy when a subscriber falls behind: its oldest event is
dropped and counted (`on_drop`), so a slow screen never slows the collector or other subscribers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Subscription(Generic[T]):
    """One subscriber's bounded queue; iterate it with `async for`."""

    def __init__(self, bus: LiveBus[T], name: str, maxsize: int) -> None:
        self.name = name
        self.dropped = 0
        self._bus = bus
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize)

    def offer(self, event: T) -> bool:
        """Queue an event, dropping the oldest if full; False if something was dropped."""
        dropped = False
        while True:
            try:
                self._queue.put_nowait(event)
                return not dropped
            except asyncio.QueueFull:
                self._queue.get_nowait()
                self.dropped += 1
                dropped = True

    async def get(self) -> T:
        """The next event."""
        return await self._queue.get()

    def close(self) -> None:
        """Stop receiving events."""
        self._bus.unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[T]:
        while True:
            yield await self._queue.get()


class LiveBus(Generic[T]):
    """Publish events to every current subscriber; publishing never blocks."""

    def __init__(self, on_drop: Callable[[str], None] | None = None) -> None:
        self._subscribers: list[Subscription[T]] = []
        self._on_drop = on_drop

    def subscribe(self, name: str, maxsize: int = 1000) -> Subscription[T]:
        """A new subscription that sees events published from now on."""
        sub = Subscription(self, name, maxsize)
        self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription[T]) -> None:
        """Remove a subscription (idempotent)."""
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def publish(self, event: T) -> None:
        """Offer `event` to every subscriber (call from the event loop's thread)."""
        for sub in self._subscribers:
            if not sub.offer(event) and self._on_drop is not None:
                self._on_drop(sub.name)

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscribers)

"""A channel delivers one notice to one far end (a robot, a webhook, a mail server) or says why not."""

from __future__ import annotations

from typing import Protocol

from maintenance.notify.notices import Notice


class DeliveryFailed(Exception):
    """The far end refused a notice or could not be reached.

    `retry`: whether trying the same notice again may help (a server away, a rate limit), or not (the far
    end refused it for good: a wrong address, a rejected login).
    """

    def __init__(self, reason: str, *, retry: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


class Channel(Protocol):
    """Where notices go; `name` labels its counter, `send` returns once the far end took the notice."""

    name: str

    async def send(self, notice: Notice) -> None:
        """Deliver `notice` once; raise `DeliveryFailed` when it was not taken (no retries here)."""
        ...

"""The project's own errors; adapters convert library errors into these at their boundary."""

from __future__ import annotations


class PumpWatchError(Exception):
    """Base of PumpWatch's errors."""


class SourceUnavailable(PumpWatchError):
    """A device or broker cannot be reached or did not answer in time."""


class DecodeError(PumpWatchError):
    """A payload or register block cannot be turned into readings; `reason` is a short metric label."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class StoreUnavailable(PumpWatchError):
    """The series store refused or failed a write or query; the caller may retry."""


class StoreRejected(PumpWatchError):
    """The series store refused data as invalid; retrying the same data will not help."""

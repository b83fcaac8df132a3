"""Which estates a person's work covers: some estates, or the whole organisation.

A role is held for one or more estates (a technician, an estate's supervisor), or for the whole
organisation (the director, the monitoring centre's operators, administrators). Every list, record,
live stream and report a person is shown passes through their `Scope`; a record outside it is
answered as if it did not exist (404), so a request never confirms what another estate holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    """The estates a person may see and act in; `estates` None means the whole organisation."""

    estates: frozenset[str] | None = None

    @property
    def whole(self) -> bool:
        """Whether the scope is the whole organisation."""
        return self.estates is None

    def covers(self, estate: str) -> bool:
        """Whether records of `estate` are inside the scope."""
        return self.estates is None or estate in self.estates

    def narrow(self, estates: Iterable[str]) -> list[str]:
        """The given estates that are inside the scope, in their order."""
        return [estate for estate in estates if self.covers(estate)]


ORGANISATION = Scope()

"""A report month: a calendar month in the site's time zone, when its report is ready and when it is due."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from maintenance.errors import InvalidInput

_LABEL = re.compile(r"(\d{4})-(\d{2})")


@dataclass(frozen=True)
class Month:
    """A calendar month in the site's time zone."""

    year: int
    month: int
    tz: ZoneInfo

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1970 <= self.year <= 9998:
            raise InvalidInput(f"no such report month: {self.year:04d}-{self.month:02d}")

    @classmethod
    def parse(cls, label: str, tz: ZoneInfo) -> Month:
        """The month `YYYY-MM`; InvalidInput otherwise."""
        found = _LABEL.fullmatch(label)
        if found is None:
            raise InvalidInput("month must look like 2026-11")
        return cls(int(found.group(1)), int(found.group(2)), tz)

    @classmethod
    def containing(cls, instant: datetime, tz: ZoneInfo) -> Month:
        """The month of the site's calendar that `instant` (aware) falls in."""
        local = instant.astimezone(tz)
        return cls(local.year, local.month, tz)

    @property
    def start(self) -> datetime:
        """First instant of the month (aware, UTC)."""
        return datetime.combine(date(self.year, self.month, 1), time(), self.tz).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """First instant of the next month (aware, UTC): the report is ready from then."""
        return self.next().start

    @property
    def due(self) -> datetime:
        """The report is due by the end of the 5th of the next month (23:59:59 local)."""
        return self.closes_at - timedelta(seconds=1)

    @property
    def closes_at(self) -> datetime:
        """When the report closes by itself: the 6th of the next month begins."""
        following = self.next()
        return datetime.combine(date(following.year, following.month, 6), time(), self.tz).astimezone(UTC)

    def next(self) -> Month:
        """The following month."""
        return Month(self.year + self.month // 12, self.month % 12 + 1, self.tz)

    def previous(self) -> Month:
        """The month before."""
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1, self.tz)

    def day(self, instant: datetime) -> str:
        """The site's calendar date of `instant`, e.g. 2026-03-03."""
        return instant.astimezone(self.tz).date().isoformat()

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

"""The portfolio report: the estates of a person's scope side by side for one month, ranked.

Each estate's month is its own calendar month (its time zone), counted up to the horizon: the end of the
month, or now for the current month. The figures, per estate:

- `sla`: deadlines met of those decided in the month, response and resolution together (the monthly
  report's `sla` figures: each clock of each cycle of work is decided when it was met, or when its
  deadline passed). The deadlines are the ones the task was given, so the estate's own SLA.
- `repeat_faults`: pairs of asset and alarm type whose alarm came up more than once in the month (raised,
  or back after clearing); `repeats` the occurrences after each pair's first.
- `rotation`: duty rotations of the month confirmed by their deadline, of those due (planned in the
  month, less those whose deadline is still to come: the monthly report's rotation figures).
- `inspection`: the other plan occurrences (rounds, tests, cleaning) whose deadline fell in the month:
  done (technician's signature) by the deadline, of those due; one cancelled before its deadline is not
  due, and one due later in the current month counts once it is done.
- `open_critical`: tasks of priority critical still open at the horizon.

`score` is the mean of the shares that have a value (sla, rotation, inspection); the ranking is by score
(an estate with none last), then fewer open criticals, then fewer repeats, then the estate's id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from maintenance.errors import InvalidInput
from maintenance.estates import estate_key
from maintenance.exports import Cell, csv_text
from maintenance.models import Alarm, AuditLog, Task
from maintenance.reports.figures import FAILED_SUFFIX, compute, load_histories
from maintenance.reports.history import EventKind, TaskHistory
from maintenance.reports.month import Month
from maintenance.reports.service import MonthlyReport
from maintenance.vocab import OPEN_TASK_STATES, Priority, TaskKind

_JUST_AFTER = timedelta(microseconds=1)  # as the monthly report: what happened at `now` itself counts
ALARM_OCCURRENCES = ("raised", "reopened", "silenced")  # the alarm audit actions that are an alarm coming up
_OPEN = frozenset(state.value for state in OPEN_TASK_STATES)
_CHUNK = 500  # ids per IN list, as the monthly report
_NOT_PLANNED = (TaskKind.CORRECTIVE.value, TaskKind.ALARM.value, TaskKind.FAULT.value)


@dataclass(frozen=True)
class Share:
    """Of `due` (or decided), `done` were on time."""

    done: int
    due: int

    @property
    def value(self) -> float | None:
        """The share, or None when nothing was due."""
        return round(self.done / self.due, 3) if self.due else None

    def as_json(self) -> dict[str, Any]:
        """As the report's JSON: `due`, `on_time`, `share`."""
        return {"due": self.due, "on_time": self.done, "share": self.value}


@dataclass(frozen=True)
class EstateMonth:
    """One estate's figures of the month."""

    estate: str
    name: dict[str, str]
    sla: Share
    response: Share
    resolution: Share
    repeat_faults: int
    repeats: int
    rotation: Share
    inspection: Share
    open_critical: int
    as_of: datetime

    @property
    def score(self) -> float | None:
        """The mean of the shares that have a value (None when none has)."""
        shares = [s for s in (self.sla.value, self.rotation.value, self.inspection.value) if s is not None]
        return round(sum(shares) / len(shares), 3) if shares else None

    def rank_key(self) -> tuple[int, float, int, int, str]:
        """Best first: the higher score, then fewer open criticals, fewer repeats, the estate's id."""
        score = self.score
        return (score is None, -(score or 0.0), self.open_critical, self.repeats, self.estate)

    def as_json(self, rank: int) -> dict[str, Any]:
        """The estate's row of the report."""
        return {"rank": rank, "estate": self.estate, "name": self.name, "score": self.score,
                "sla": self.sla.as_json(), "response": self.response.as_json(),
                "resolution": self.resolution.as_json(),
                "repeat_faults": self.repeat_faults, "repeats": self.repeats,
                "rotation": self.rotation.as_json(), "inspection": self.inspection.as_json(),
                "open_critical": self.open_critical, "as_of": self.as_of.isoformat()}


def _sla_share(figures: dict[str, Any], clock: str) -> Share:
    found = figures["sla"][clock]
    return Share(int(found["met"]), int(found["decided"]))


def inspection_compliance(histories: Iterable[TaskHistory], month: Month, horizon: datetime,
                          rotation_prefix: str) -> Share:
    """Plan occurrences other than the rotation due in `month`: done by their deadline, of those due."""
    done = due = 0
    for history in histories:
        key = history.plan_key or ""
        if (not key or key.startswith(rotation_prefix) or key.endswith(FAILED_SUFFIX)
                or history.kind in _NOT_PLANNED or not history.cycles):
            continue
        deadline = history.cycles[0].resolution
        if deadline.due_at is None or not month.start <= deadline.due_at < month.end:
            continue
        completed = history.first(EventKind.COMPLETED)
        on_time = completed is not None and completed.at < horizon and completed.at <= deadline.due_at
        if deadline.dropped_at is not None and deadline.dropped_at <= deadline.due_at and not on_time:
            continue  # cancelled (or superseded) before it was due: not owed
        if on_time:
            done += 1
            due += 1
        elif deadline.due_at < horizon:
            due += 1
    return Share(done, due)


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield list(ids[i:i + _CHUNK])


def estates_of(session: Session, task_ids: Sequence[int]) -> dict[int, str]:
    """Each task's estate."""
    found: dict[int, str] = {}
    for chunk in _chunks(task_ids):
        rows = session.execute(select(Task.id, Task.estate).where(Task.id.in_(chunk)))
        found.update({task_id: estate for task_id, estate in rows})
    return found


def open_criticals(session: Session, histories: Iterable[TaskHistory], estate_of: dict[int, str],
                   horizon: datetime) -> Counter[str]:
    """Per estate: tasks of priority critical (as they stand) that were open at `horizon`."""
    critical = set(session.scalars(select(Task.id).where(Task.priority == Priority.CRITICAL.value,
                                                         Task.created_at < horizon)))
    return Counter(estate_of[h.task_id] for h in histories
                   if h.task_id in critical and h.state_at(horizon) in _OPEN)


def alarm_repeats(session: Session, start: datetime, horizon: datetime) -> dict[str, tuple[int, int]]:
    """Per estate: pairs of asset and alarm type that came up more than once, and the repeats.

    The repeats are each pair's occurrences after its first.
    """
    came_up = Counter(int(entity_id) for entity_id in session.scalars(select(AuditLog.entity_id).where(
        AuditLog.entity == "alarm", AuditLog.action.in_(ALARM_OCCURRENCES),
        AuditLog.ts >= start, AuditLog.ts < horizon)) if entity_id.isdigit())
    seen: Counter[tuple[str, str, str]] = Counter()
    for chunk in _chunks(sorted(came_up)):
        rows = session.execute(select(Alarm.id, Alarm.estate, Alarm.asset, Alarm.alarm_type)
                               .where(Alarm.id.in_(chunk)))
        for alarm_id, estate, asset, alarm_type in rows:
            seen[(estate, asset, alarm_type)] += came_up[alarm_id]
    found: dict[str, tuple[int, int]] = {}
    for (estate, _asset, _type), count in seen.items():
        if count > 1:
            pairs, repeats = found.get(estate, (0, 0))
            found[estate] = (pairs + 1, repeats + count - 1)
    return found


class PortfolioReport:
    """Every estate of a scope in one month, ranked; from the same task histories as the monthly report.

    Estates in one time zone share their month and its horizon, so their task histories, alarms and
    critical tasks are read once for all of them (two hundred estates are a few queries, not a thousand).
    """

    def __init__(self, sessions: sessionmaker[Session], reports: MonthlyReport) -> None:
        self._sessions = sessions
        self._reports = reports

    def months(self, session: Session, month: Month, estates: Sequence[str],
               now: datetime) -> list[EstateMonth]:
        """The figures of `estates`, all of whose months are `month`, as of `now`."""
        reports = self._reports
        horizon = min(now + _JUST_AFTER, month.end)
        histories = load_histories(session, month, horizon, reports.sla.window)
        estate_of = estates_of(session, [h.task_id for h in histories])
        by_estate: dict[str, list[TaskHistory]] = {estate: [] for estate in estates}
        for history in histories:
            mine = by_estate.get(estate_of.get(history.task_id, ""))
            if mine is not None:
                mine.append(history)
        critical = open_criticals(session, histories, estate_of, horizon)
        repeated = alarm_repeats(session, month.start, horizon)
        return [self._estate_month(estate, month, horizon, by_estate[estate], critical[estate],
                                   repeated.get(estate, (0, 0)), now) for estate in estates]

    def _estate_month(self, estate: str, month: Month, horizon: datetime, histories: list[TaskHistory],
                      critical: int, repeated: tuple[int, int], now: datetime) -> EstateMonth:
        reports = self._reports
        rotation_plan = reports.rotation_plan(estate)
        figures = compute(month, histories, horizon, rotation_plan, estate).figures
        response, resolution = _sla_share(figures, "response"), _sla_share(figures, "resolution")
        rotation = figures["rotation"]
        return EstateMonth(
            estate=estate, name=reports.site_name(estate).model_dump(),
            sla=Share(response.done + resolution.done, response.due + resolution.due),
            response=response, resolution=resolution, repeat_faults=repeated[0], repeats=repeated[1],
            rotation=Share(rotation["on_time"], rotation["planned"] - rotation["pending"]),
            inspection=inspection_compliance(histories, month, horizon,
                                             f"{estate_key(estate, rotation_plan)}:"),
            open_critical=critical, as_of=min(now, month.end))

    def report(self, label: str, estates: Sequence[str], now: datetime) -> dict[str, Any]:
        """The month `YYYY-MM` of `estates`, best first (InvalidInput before the month has begun)."""
        if not estates:
            return {"month": label, "count": 0, "data": []}
        by_month: dict[Month, list[str]] = {}
        for estate in estates:
            by_month.setdefault(self._reports.month(label, estate), []).append(estate)
        if all(now < month.start for month in by_month):
            raise InvalidInput(f"{label} has not begun: there is no report yet")
        with self._sessions() as session:
            rows = sorted((row for month, group in by_month.items()
                           for row in self.months(session, month, group, now)), key=EstateMonth.rank_key)
        return {"month": label, "count": len(rows),
                "final": all(month.end <= now for month in by_month),
                "data": [row.as_json(rank) for rank, row in enumerate(rows, start=1)]}


CSV_HEADER = ("rank", "estate", "name_zh", "name_en", "score", "sla_share", "sla_on_time", "sla_decided",
              "response_share", "resolution_share", "repeat_faults", "repeats", "rotation_share",
              "rotation_on_time", "rotation_due", "inspection_share", "inspection_on_time", "inspection_due",
              "open_critical", "as_of")


def _csv_rows(report: dict[str, Any]) -> Iterable[Sequence[Cell]]:
    for row in report["data"]:
        yield (row["rank"], row["estate"], row["name"].get("zh"), row["name"].get("en"), row["score"],
               row["sla"]["share"], row["sla"]["on_time"], row["sla"]["due"], row["response"]["share"],
               row["resolution"]["share"], row["repeat_faults"], row["repeats"], row["rotation"]["share"],
               row["rotation"]["on_time"], row["rotation"]["due"], row["inspection"]["share"],
               row["inspection"]["on_time"], row["inspection"]["due"], row["open_critical"], row["as_of"])


def portfolio_csv(report: dict[str, Any]) -> str:
    """The ranking as CSV, one row per estate (UTF-8 BOM, CRLF, every cell inert)."""
    return csv_text(CSV_HEADER, _csv_rows(report))

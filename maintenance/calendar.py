"""The plan calendar as pure functions: which occurrences a plan has in a time range, and when.

Occurrences are computed on local calendar days of the site's time zone and only then turned into
instants, so "08:00 every other day" stays 08:00 across daylight-saving changes. Each occurrence has a
stable key (target and local date) that never depends on when it is computed, on lead times or on
reschedules: the scheduler turns `plan_key` into exactly one task.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pumpwatch.plans import (
    EveryDays,
    EveryMonths,
    Monthly,
    Plan,
    RunHours,
    Schedule,
    Scope,
    Weekly,
    Yearly,
)
from pumpwatch.site import DutyGroup, Pump, Room, SensorKind, Site, Tank, Text

Status = Literal["scheduled", "rescheduled", "postponed", "skipped"]
Field = Literal["due", "opens"]


@dataclass(frozen=True, slots=True)
class Target:
    """What one occurrence covers: the site, a room, a pump or a duty group."""

    id: str
    name: Text
    room: str | None
    asset: str | None  # pump or duty group id; None for room and site plans


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of a plan for one target; times are aware UTC datetimes."""

    plan: str
    target: Target
    key: str  # "<target>@<local date>" (run-hour plans: "<target>@<hours>h")
    day: date | None  # the local date it falls due before any reschedule (None for run-hour plans)
    due_at: datetime
    opens_at: datetime
    status: Status = "scheduled"
    reason: str | None = None

    @property
    def plan_key(self) -> str:
        """The task's idempotency key: "<plan>:<occurrence key>"."""
        return f"{self.plan}:{self.key}"

    @property
    def skipped(self) -> bool:
        """True when this occurrence creates no task (skipped or in a skipping blackout)."""
        return self.status == "skipped"

    def when(self, field: Field) -> datetime:
        """The due or the opening instant."""
        return self.due_at if field == "due" else self.opens_at


def zone_of(site: Site) -> ZoneInfo:
    """The site's time zone."""
    return ZoneInfo(site.site.timezone)


def to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """A naive local wall-clock time as an aware UTC instant (a time in a DST gap moves forward)."""
    return local.replace(tzinfo=zone).astimezone(UTC)


def plan_targets(site: Site, plan: Plan) -> list[Target]:
    """What each occurrence of `plan` covers at `site`, in file order."""
    return [target for _plan, targets in plan_schedules(site, plan) for target in targets]


def plan_schedules(site: Site, plan: Plan) -> list[tuple[Plan, list[Target]]]:
    """The plan's targets, grouped by the schedule each follows (one group unless some have their own).

    Only rotation has per-target schedules: a duty group under `plans.rotation.groups` with its own
    `every_days` rotates on that interval, at the plan's time of day.
    """
    targets = _targets(site, plan)
    if plan.action != "rotate" or not isinstance(plan.schedule, EveryDays | Weekly | Monthly):
        return [(plan, targets)] if targets else []
    settings = site.plans.rotation.groups
    at = plan.schedule.at
    anchor = plan.schedule.anchor if isinstance(plan.schedule, EveryDays) else EveryDays(
        type="every_days").anchor
    by_days: dict[int | None, list[Target]] = {}
    for target in targets:
        own = settings.get(target.id)
        by_days.setdefault(own.every_days if own is not None else None, []).append(target)
    out: list[tuple[Plan, list[Target]]] = []
    for days, chosen in by_days.items():
        if days is None:
            out.append((plan, chosen))
        else:
            schedule = EveryDays(type="every_days", days=days, anchor=anchor, at=at)
            out.append((plan.model_copy(update={"schedule": schedule}), chosen))
    return out


def _targets(site: Site, plan: Plan) -> list[Target]:
    rooms = [r for r in site.rooms if not plan.rooms or r.id in plan.rooms]
    if plan.scope is Scope.SITE:
        return [Target(site.site.id, site.site.name, None, None)]
    if plan.scope is Scope.ROOM:
        return [Target(r.id, r.name, r.id, None) for r in rooms]
    out: list[Target] = []
    for room in rooms:
        if plan.scope is Scope.DUTY_GROUP:
            for group in room.duty_groups:
                if (not plan.assets or group.id in plan.assets) and _group_applies(site, plan, room, group):
                    name = Text(zh=f"{room.name.zh} {group.id}", en=f"{room.name.en} {group.id}")
                    out.append(Target(group.id, name, room.id, group.id))
            continue
        if plan.scope is Scope.TANK:
            out += _tank_targets(plan, room)
            continue
        for eq in room.equipment:
            if not isinstance(eq, Pump):
                continue
            if plan.pump_kinds and eq.kind.value not in plan.pump_kinds:
                continue
            if plan.assets and eq.id not in plan.assets:
                continue
            if isinstance(plan.schedule, RunHours) and run_hours_sensor(site, plan, eq.id) is None:
                continue
            out.append(Target(eq.id, eq.name or Text(zh=eq.id, en=eq.id), room.id, eq.id))
    return out


def _group_applies(site: Site, plan: Plan, room: Room, group: DutyGroup) -> bool:
    """A duty group is in a plan when its pumps are of the plan's kinds, unless rotation settings say."""
    if plan.action == "rotate":
        own = site.plans.rotation.groups.get(group.id)
        if own is not None and own.enabled is not None:
            return own.enabled
    if not plan.pump_kinds:
        return True
    kinds = {eq.kind.value for eq in room.equipment if isinstance(eq, Pump) and eq.id in group.pumps}
    return bool(kinds) and kinds <= set(plan.pump_kinds)


def _tank_targets(plan: Plan, room: Room) -> list[Target]:
    """Tanks of a tank plan: those in rooms with pumps of the plan's kinds (domestic: drinking water)."""
    if plan.pump_kinds and not any(isinstance(eq, Pump) and eq.kind.value in plan.pump_kinds
                                   for eq in room.equipment):
        return []
    return [Target(eq.id, eq.name or Text(zh=eq.id, en=eq.id), room.id, eq.id) for eq in room.equipment
            if isinstance(eq, Tank) and (not plan.assets or eq.id in plan.assets)]


def run_hours_sensor(site: Site, plan: Plan, pump_id: str) -> str | None:
    """The run_hours sensor that counts `pump_id`'s hours for a run-hour plan, if it has one."""
    if isinstance(plan.schedule, RunHours) and pump_id in plan.schedule.sensors:
        return plan.schedule.sensors[pump_id]
    for _room, eq, sensor in site.iter_sensors():
        if eq is not None and eq.id == pump_id and sensor.kind is SensorKind.RUN_HOURS:
            return sensor.id
    return None


def nominal_days(schedule: Schedule, first: date, last: date) -> Iterator[date]:
    """Local dates in [first, last] on which a calendar schedule falls due (before exceptions)."""
    if isinstance(schedule, EveryDays):
        offset = (first - schedule.anchor).days % schedule.days
        day = first if offset == 0 else first + timedelta(days=schedule.days - offset)
        while day <= last:
            yield day
            day += timedelta(days=schedule.days)
    elif isinstance(schedule, Weekly):
        day = first + timedelta(days=(schedule.weekday.number - first.weekday()) % 7)
        while day <= last:
            yield day
            day += timedelta(days=7)
    elif isinstance(schedule, Monthly):
        year, month = first.year, first.month
        while date(year, month, 1) <= last:
            day = date(year, month, min(schedule.day, _month_length(year, month)))
            if first <= day <= last:
                yield day
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    elif isinstance(schedule, EveryMonths):
        anchor = schedule.anchor
        start = (first.year - anchor.year) * 12 + first.month - anchor.month
        step = start // schedule.months * schedule.months  # the last occurrence month at or before first
        while True:
            year, month = divmod(anchor.year * 12 + anchor.month - 1 + step, 12)
            month += 1
            day = date(year, month, min(anchor.day, _month_length(year, month)))
            if day > last:
                break
            if day >= first:
                yield day
            step += schedule.months
    elif isinstance(schedule, Yearly):
        month, dom = schedule.due_md
        for year in range(first.year, last.year + 1):
            day = date(year, month, dom)
            if first <= day <= last:
                yield day


def occurrences(plan: Plan, targets: Sequence[Target], zone: ZoneInfo, start: datetime, end: datetime,
                field: Field = "due") -> list[Occurrence]:
    """Occurrences of a calendar plan whose due (or opening) instant is in [start, end), skipped included.

    Sorted by that instant, then target. Run-hour plans have none here (see `run_hours_occurrence`).
    """
    schedule = plan.schedule
    if schedule is None or isinstance(schedule, RunHours):
        return []
    pad = _padding(plan)
    first = start.astimezone(zone).date() - pad
    last = end.astimezone(zone).date() + pad
    out: list[Occurrence] = []
    for day in nominal_days(schedule, first, last):
        due_local, opens_local, status, reason = _adjusted(plan, schedule, day)
        due_at, opens_at = to_utc(due_local, zone), to_utc(opens_local, zone)
        instant = due_at if field == "due" else opens_at
        if not start <= instant < end:
            continue
        for target in targets:
            out.append(Occurrence(plan.id, target, f"{target.id}@{day.isoformat()}", day, due_at, opens_at,
                                  status, reason))
    out.sort(key=lambda o: (o.when(field), o.target.id))
    return out


def windows_since(plan: Plan, targets: Sequence[Target], zone: ZoneInfo, since: datetime,
                  end: datetime) -> list[Occurrence]:
    """Occurrences opened before `end` whose window was still open at `since` or opened after it.

    For work that cannot be missed: a window open when a plan began to apply, or that opened (and perhaps
    closed) while no scheduler ran, however long ago `since` is.
    """
    found = occurrences(plan, targets, zone, since - _padding(plan), end, "opens")
    return [o for o in found if o.due_at >= since]


def site_occurrences(site: Site, start: datetime, end: datetime, field: Field = "due",
                     plans: Sequence[Plan] | None = None) -> list[Occurrence]:
    """Every calendar occurrence of the site's plans in [start, end), by instant, plan and target."""
    zone = zone_of(site)
    out: list[Occurrence] = []
    for plan in plans if plans is not None else site.plans.effective():
        for scheduled, targets in plan_schedules(site, plan):
            out += occurrences(scheduled, targets, zone, start, end, field)
    out.sort(key=lambda o: (o.when(field), o.plan, o.target.id))
    return out


def run_hours_occurrence(plan: Plan, target: Target, hours: float, now: datetime) -> Occurrence | None:
    """The occurrence a pump's running hours have reached (opening `lead_hours` early), if any.

    Only the latest mark counts: a pump fitted with 9,000 h gets the 8,000 h task, not four of them.
    """
    schedule = plan.schedule
    if not isinstance(schedule, RunHours) or not math.isfinite(hours):
        return None
    mark = math.floor((hours + schedule.lead_hours) / schedule.every_hours)
    if mark < 1:
        return None
    at_hours = mark * schedule.every_hours
    return Occurrence(plan.id, target, f"{target.id}@{at_hours:g}h", None,
                      now + timedelta(days=schedule.due_days), now)


def _adjusted(plan: Plan, schedule: Schedule, day: date) -> tuple[datetime, datetime, Status, str | None]:
    """Local due and opening time of the occurrence of `day`, after skip, reschedule and blackout."""
    assert not isinstance(schedule, RunHours)
    due = datetime.combine(day, schedule.at)
    status: Status = "scheduled"
    reason: str | None = None
    skipped = next((s for s in plan.skip if s.date == day), None)
    moved = next((r for r in plan.reschedule if r.date == day), None)
    if skipped is not None:
        status, reason = "skipped", skipped.reason
    elif moved is not None:
        due, status, reason = moved.to, "rescheduled", moved.reason
    if status != "skipped":
        for _ in range(len(plan.blackout)):  # each pass clears at least one blackout, or stops
            hit = next((b for b in plan.blackout if b.start <= due.date() <= b.end), None)
            if hit is None:
                break
            if hit.action == "skip":
                status, reason = "skipped", hit.reason
                break
            due, status, reason = datetime.combine(hit.end + timedelta(days=1), due.time()), "postponed", \
                hit.reason
    if isinstance(schedule, Yearly):
        month, dom = schedule.opens_md
        year = day.year - 1 if (month, dom) > schedule.due_md else day.year
        opens = datetime.combine(date(year, month, dom), time(0, 0))
        opens += due - datetime.combine(day, schedule.at)  # a moved due moves the window with it
    else:
        opens = due - timedelta(hours=plan.lead_hours)
    return due, min(opens, due), status, reason


def _padding(plan: Plan) -> timedelta:
    """How far before and after a range nominal days must be looked at to catch every shifted one."""
    days = 2 + math.ceil(plan.lead_hours / 24)
    days += max((abs((r.to.date() - r.date).days) for r in plan.reschedule), default=0)
    days += sum((b.end - b.start).days + 1 for b in plan.blackout)
    if isinstance(plan.schedule, Yearly):
        days += 366
    return timedelta(days=days)


def _month_length(year: int, month: int) -> int:
    following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return (following - date(year, month, 1)).days

"""The plan calendar: a year of the regulation, DST, exceptions, stable keys (pure functions, no database)."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from maintenance.calendar import (
    Target,
    nominal_days,
    occurrences,
    plan_targets,
    run_hours_occurrence,
    site_occurrences,
    zone_of,
)
from pumpwatch.plans import Blackout, EveryDays, Monthly, Plan, Reschedule, RunHours, Scope, Skip
from pumpwatch.site import Text
from pumpwatch.sitefile import load_site
from tests.support.sites import BERLIN, SHANGHAI, site_with

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
YEAR_START = datetime(2026, 1, 1, tzinfo=SHANGHAI)
YEAR_END = datetime(2027, 1, 1, tzinfo=SHANGHAI)
TARGET = Target("t1", Text(zh="甲", en="A"), "room", None)


def _rotation(**changes: object) -> Plan:
    base = Plan(id="rot", name=Text(zh="轮换", en="Rotation"), scope=Scope.ROOM,
                schedule=EveryDays(type="every_days", days=2, at=time(8, 0)))
    return base.model_copy(update=changes)


def test_a_year_of_the_example_site_opens_what_the_regulation_asks() -> None:
    site = load_site(EXAMPLE)
    occ = site_occurrences(site, YEAR_START, YEAR_END, field="opens")
    counts = Counter((o.plan, o.target.id) for o in occ)
    assert counts[("duty-rotation", "dom-duty")] == 183
    assert counts[("contactor-check", "dom-p1")] == 12
    assert counts[("contactor-check", "dom-p2")] == 12
    assert ("contactor-check", "fire-p1") not in counts  # domestic pumps only
    for room in ("dom", "fire"):
        assert counts[("weekly-sweep", room)] == 52  # 2026 has 52 Mondays
        assert counts[("unit-cleaning", room)] == 12
        assert counts[("daily-round", room)] == 365
        assert counts[("pipe-anti-rust", room)] == 1
    assert counts[("fire-monthly", "fire-p1")] == 12
    assert counts[("fire-monthly", "fire-jockey")] == 12
    assert ("fire-monthly", "fire-sewage") not in counts
    rust = [o for o in occ if o.plan == "pipe-anti-rust"]
    assert {o.opens_at.astimezone(SHANGHAI) for o in rust} == {datetime(2026, 12, 1, tzinfo=SHANGHAI)}
    assert {o.due_at.astimezone(SHANGHAI) for o in rust} == {datetime(2027, 1, 31, 17, tzinfo=SHANGHAI)}
    assert {o.key for o in rust} == {"dom@2027-01-31", "fire@2027-01-31"}
    sweeps = [o for o in occ if o.plan == "weekly-sweep"]
    assert {o.due_at.astimezone(SHANGHAI).weekday() for o in sweeps} == {0}


def test_rotation_days_keep_their_rhythm_across_the_new_year() -> None:
    days = list(nominal_days(EveryDays(type="every_days", days=2), date(2026, 12, 28), date(2027, 1, 6)))
    assert days == [date(2026, 12, 29), date(2026, 12, 31), date(2027, 1, 2), date(2027, 1, 4),
                    date(2027, 1, 6)]


def test_berlin_rotation_stays_at_eight_local_on_both_sides_of_both_dst_changes() -> None:
    site = site_with(timezone="Europe/Berlin")
    plan = site.plans.plan("duty-rotation")
    start, end = datetime(2026, 3, 1, tzinfo=BERLIN), datetime(2026, 12, 1, tzinfo=BERLIN)
    occ = occurrences(plan, plan_targets(site, plan), zone_of(site), start, end)
    local = [o.due_at.astimezone(BERLIN) for o in occ]
    assert {t.time() for t in local} == {time(8, 0)}
    assert all((b.date() - a.date()).days == 2 for a, b in itertools.pairwise(local))
    utc_hours = {o.due_at.date(): o.due_at.hour for o in occ}
    assert utc_hours[date(2026, 3, 28)] == 7  # CET, UTC+1 (the change is in the night to the 29th)
    assert utc_hours[date(2026, 3, 30)] == 6  # CEST, UTC+2
    assert utc_hours[date(2026, 10, 24)] == 6  # the last rotation before the change on the 25th
    assert utc_hours[date(2026, 10, 26)] == 7  # back on CET


def test_a_time_in_the_spring_gap_moves_forward_and_lead_counts_on_the_wall_clock() -> None:
    plan = _rotation(schedule=EveryDays(type="every_days", days=1, at=time(2, 30)), lead_hours=3.0)
    start = datetime(2026, 3, 29, tzinfo=BERLIN)
    [occ] = occurrences(plan, [TARGET], BERLIN, start, start + timedelta(days=1))
    assert occ.due_at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 02:30 does not exist: 03:30 CEST
    assert occ.opens_at.astimezone(BERLIN).time() == time(23, 30)  # 3 h before 02:30 on the wall clock


def test_skip_reschedule_and_blackout_keep_the_occurrence_key() -> None:
    plan = _rotation(
        skip=(Skip(date=date(2026, 1, 3), reason="holiday"),),
        reschedule=(Reschedule(date=date(2026, 1, 5), to=datetime(2026, 1, 6, 10, 0), reason="crane"),),
        blackout=(Blackout(start=date(2026, 1, 9), end=date(2026, 1, 10), reason="works"),
                  Blackout(start=date(2026, 1, 13), end=date(2026, 1, 13), reason="audit", action="skip")))
    start = datetime(2026, 1, 1, tzinfo=SHANGHAI)
    occ = {o.key: o for o in occurrences(plan, [TARGET], SHANGHAI, start, start + timedelta(days=16))}
    assert occ["t1@2026-01-01"].status == "scheduled"
    assert occ["t1@2026-01-03"].skipped
    assert occ["t1@2026-01-03"].reason == "holiday"
    moved = occ["t1@2026-01-05"]
    assert moved.status == "rescheduled"
    assert moved.due_at.astimezone(SHANGHAI) == datetime(2026, 1, 6, 10, 0, tzinfo=SHANGHAI)
    postponed = occ["t1@2026-01-09"]
    assert postponed.status == "postponed"
    assert postponed.reason == "works"
    assert postponed.due_at.astimezone(SHANGHAI) == datetime(2026, 1, 11, 8, 0, tzinfo=SHANGHAI)
    assert occ["t1@2026-01-13"].skipped
    assert occ["t1@2026-01-13"].reason == "audit"
    assert occ["t1@2026-01-07"].status == "scheduled"
    assert len(occ) == 8


def test_an_occurrence_moved_into_the_range_is_found_and_one_moved_out_is_not() -> None:
    plan = _rotation(reschedule=(Reschedule(date=date(2026, 1, 5), to=datetime(2026, 1, 20, 9, 0),
                                            reason="parts"),))
    start = datetime(2026, 1, 18, tzinfo=SHANGHAI)
    keys = [o.key for o in occurrences(plan, [TARGET], SHANGHAI, start, start + timedelta(days=3))]
    assert keys == ["t1@2026-01-19", "t1@2026-01-05"]  # [start, end): the 21st is out
    early = datetime(2026, 1, 4, tzinfo=SHANGHAI)
    keys = [o.key for o in occurrences(plan, [TARGET], SHANGHAI, early, early + timedelta(days=3))]
    assert keys == []  # 01-05 moved away, 01-03 and 01-07 are outside


def test_monthly_on_the_31st_falls_on_each_months_last_day() -> None:
    days = list(nominal_days(Monthly(type="monthly", day=31), date(2026, 1, 1), date(2026, 4, 30)))
    assert days == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]


def test_keys_do_not_depend_on_the_range_asked_for() -> None:
    site = load_site(EXAMPLE)
    a = site_occurrences(site, YEAR_START, YEAR_START + timedelta(days=40))
    b = site_occurrences(site, YEAR_START + timedelta(days=20), YEAR_START + timedelta(days=60))
    overlap = YEAR_START + timedelta(days=20), YEAR_START + timedelta(days=40)
    in_a = {(o.plan_key, o.due_at) for o in a if overlap[0] <= o.due_at < overlap[1]}
    in_b = {(o.plan_key, o.due_at) for o in b if overlap[0] <= o.due_at < overlap[1]}
    assert in_a == in_b
    assert len(in_a) > 40
    assert all(k.startswith(("daily-round:", "duty-rotation:", "weekly-sweep:", "contactor-check:",
                             "unit-cleaning:", "fire-weekly-test:", "fire-monthly:", "pipe-anti-rust:"))
               for k, _ in in_a)
    assert ("pipe-anti-rust:dom@2026-01-31", datetime(2026, 1, 31, 9, tzinfo=UTC)) in in_a


def test_run_hour_marks_count_from_the_latest_mark_only() -> None:
    plan = Plan(id="lube", name=Text(zh="润滑", en="Lube"), scope=Scope.PUMP,
                schedule=RunHours(type="run_hours", every_hours=2000, lead_hours=50, due_days=7))
    now = datetime(2026, 5, 1, tzinfo=UTC)
    assert run_hours_occurrence(plan, TARGET, 1900.0, now) is None
    occ = run_hours_occurrence(plan, TARGET, 1950.0, now)
    assert occ is not None
    assert occ.plan_key == "lube:t1@2000h"
    assert occ.due_at - occ.opens_at == timedelta(days=7)
    later = run_hours_occurrence(plan, TARGET, 9000.0, now)
    assert later is not None
    assert later.key == "t1@8000h"

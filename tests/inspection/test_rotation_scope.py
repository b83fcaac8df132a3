"""Rotation where the rule says: domestic duty groups swap every other day; other groups only if told."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from inspection.scheduler import InspectionScheduler
from maintenance.calendar import plan_targets, site_occurrences
from maintenance.tasks import TaskService
from pumpwatch.clock import FakeClock
from pumpwatch.sitefile import SiteFileError, parse_site
from tests.inspection.fire_sites import fire_site, fire_site_data, site_yaml
from tests.support.sites import SHANGHAI, local_epoch, own_key, plan_tasks

START = datetime(2026, 1, 1, tzinfo=SHANGHAI)


def _rotations(plans: dict[str, object] | None = None, days: int = 28) -> Counter[str]:
    site = fire_site(plans)
    found = site_occurrences(site, START, START + timedelta(days=days),
                             plans=[site.plans.plan("duty-rotation")])
    return Counter(o.target.id for o in found)


def test_only_domestic_duty_groups_rotate_by_default() -> None:
    site = fire_site()
    assert [t.id for t in plan_targets(site, site.plans.plan("duty-rotation"))] == ["dom-grp"]
    assert _rotations() == {"dom-grp": 14}  # every other day; the sprinkler group `spr` never


def test_a_group_is_switched_on_or_off_or_given_its_own_interval_in_the_site_file() -> None:
    counts = _rotations({"rotation": {"groups": {"spr": {"enabled": True, "every_days": 7},
                                                 "dom-grp": {"every_days": 1}}}})
    assert counts == {"dom-grp": 28, "spr": 4}
    assert _rotations({"rotation": {"groups": {"dom-grp": {"enabled": False}}}}) == {}
    assert _rotations({"rotation": {"groups": {"spr": {"enabled": True}}}}) == {"dom-grp": 14, "spr": 14}


def test_a_group_with_its_own_interval_keeps_the_plan_time_and_its_keys() -> None:
    site = fire_site({"rotation": {"groups": {"spr": {"enabled": True, "every_days": 3}}}})
    found = [o for o in site_occurrences(site, START, START + timedelta(days=9),
                                         plans=[site.plans.plan("duty-rotation")]) if o.target.id == "spr"]
    assert [o.key for o in found] == ["spr@2026-01-01", "spr@2026-01-04", "spr@2026-01-07"]
    assert {o.due_at.astimezone(SHANGHAI).hour for o in found} == {8}


def test_rotation_group_settings_are_checked_with_file_and_line() -> None:
    data = fire_site_data({"rotation": {"groups": {"no-such-group": {"enabled": True},
                                                   "spr": {"every_days": 0}}}})
    text = site_yaml(data)
    with pytest.raises(SiteFileError) as info:
        parse_site(text, "site.yaml")
    [issue] = info.value.issues  # the shape error comes first; references are checked on a valid shape
    assert issue.field == "plans.rotation.groups.spr.every_days"
    assert issue.line == next(n for n, line in enumerate(text.splitlines(), 1) if "every_days: 0" in line)
    data = fire_site_data({"rotation": {"groups": {"no-such-group": {"enabled": True}}}})
    text = site_yaml(data)
    with pytest.raises(SiteFileError) as info:
        parse_site(text, "site.yaml")
    [issue] = info.value.issues
    assert (issue.field, issue.message) == ("plans.rotation.groups.no-such-group",
                                            "unknown duty group 'no-such-group'")
    assert issue.line == next(n for n, line in enumerate(text.splitlines(), 1) if "no-such-group" in line)


async def test_the_scheduler_rotates_the_domestic_group_and_leaves_the_sprinkler_group_alone(
        sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(local_epoch(SHANGHAI, 2026, 1, 1, 7))
    scheduler = InspectionScheduler(fire_site(), sessions, TaskService(sessions, clock), clock, offload=False)
    await scheduler.tick()
    for _ in range(5):
        await clock.advance(86_400)
        await scheduler.tick()
    keys = [own_key(t) for t in plan_tasks(sessions, "duty-rotation:")]
    assert keys == ["duty-rotation:dom-grp@2026-01-01", "duty-rotation:dom-grp@2026-01-03",
                    "duty-rotation:dom-grp@2026-01-05"]
    assert scheduler.rotation.results  # the domestic group's rotations were started
    assert {r.group for r in scheduler.rotation.results} == {"dom-grp"}

"""Plans in the site file: the regulation by default, partial changes, and located reference errors."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from pumpwatch.plans import BUILTIN_PLANS, ROUND_CHECKLIST, EveryDays, ItemType, PlanSettings, Scope
from pumpwatch.sitefile import SiteFileError, load_site, parse_site

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
MINIMAL = (Path(__file__).parents[2] / "examples" / "minimal.yaml").read_text()


def issues(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(SiteFileError) as info:
        parse_site(text, "site.yaml")
    return [(i.line, i.field, i.message) for i in info.value.issues]


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_a_site_without_plans_gets_the_regulation() -> None:
    site = load_site(EXAMPLE)
    ids = [p.id for p in site.plans.effective()]
    assert ids == ["duty-rotation", "daily-round", "weekly-sweep", "contactor-check", "unit-cleaning",
                   "fire-weekly-test", "fire-monthly", "pipe-anti-rust", "tank-cleaning",
                   "bearing-lubrication"]
    rotation = site.plans.plan("duty-rotation")
    assert rotation.action == "rotate"
    assert rotation.scope is Scope.DUTY_GROUP
    assert rotation.schedule == EveryDays(type="every_days", days=2, at=time(8, 0))
    for plan in site.plans.effective():
        assert plan.title.zh
        assert plan.title.en
        assert all(item.text.zh and item.text.en for item in plan.checklist)


def test_the_round_has_the_ten_items_of_the_regulation() -> None:
    assert len(ROUND_CHECKLIST) == 10
    numbers = [i for i in ROUND_CHECKLIST if i.type is ItemType.NUMBER]
    assert {i.key for i in numbers} == {"motor-temperature", "supply-voltage", "pressure-gauge"}
    assert all(i.expected is not None and i.unit and i.sensor_kind for i in numbers)
    every_type = {i.type for plan in BUILTIN_PLANS for i in plan.checklist}
    assert every_type == set(ItemType)  # pass/fail, number, text, photo and signature all in use


def test_a_site_changes_only_the_fields_it_sets_of_a_built_in_plan() -> None:
    text = MINIMAL + """
plans:
  plans:
    - id: daily-round
      schedule: {type: every_days, days: 1, at: "16:00"}
      blackout: [{start: 2026-02-16, end: 2026-02-22, reason: 春节 Spring Festival, action: skip}]
    - id: fire-monthly
      enabled: false
    - id: pump-paint
      name: {zh: 水泵补漆, en: Pump touch-up paint}
      scope: pump
      schedule: {type: yearly, opens: "04-01", due: "04-30"}
"""
    site = parse_site(text)
    plans = {p.id: p for p in site.plans.effective()}
    assert "fire-monthly" not in plans
    round_ = plans["daily-round"]
    assert round_.schedule == EveryDays(type="every_days", days=1, at=time(16, 0))
    assert round_.checklist == ROUND_CHECKLIST
    assert round_.lead_hours == 9.0
    assert round_.task_kind == "inspection"
    assert round_.blackout[0].action == "skip"
    assert plans["pump-paint"].title.en == "Pump touch-up paint"


def test_plan_mistakes_are_reported_with_line_and_field() -> None:
    text = MINIMAL + """
plans:
  rotation:
    duty_select: {no-group: pump1-current}
    pressure: {no-group: header1-pressure}
  plans:
    - id: contactor-check
      rooms: [room1, cellar]
      assets: [pump9]
      pump_kinds: [boiler]
      checklist:
        - {key: a, text: {zh: 甲, en: A}, sensor_kind: wind_speed, sensors: [nope]}
    - id: weekly-sweep
      assets: [pump1]
    - id: lube
      name: {zh: 润滑, en: Lube}
      scope: pump
      schedule: {type: run_hours, every_hours: 1000, sensors: {pump1: pump1-current}}
"""
    found = issues(text)
    by_path = {path: (line, message) for line, path, message in reversed(found)}  # the first per path
    assert by_path["plans.plans[0].rooms[1]"] == (line_of(text, "rooms: [room1, cellar]"),
                                                  "unknown room 'cellar'")
    assert by_path["plans.plans[0].assets[0]"][1] == "unknown pump 'pump9'"
    assert by_path["plans.plans[0].pump_kinds[0]"][1] == "unknown pump kind 'boiler'"
    assert by_path["plans.plans[0].checklist[0].sensor_kind"][1] == "unknown sensor kind 'wind_speed'"
    assert by_path["plans.plans[0].checklist[0].sensors[0]"][1] == "unknown sensor 'nope'"
    assert "use scope pump, duty_group or tank" in by_path["plans.plans[1].assets"][1]
    assert by_path["plans.plans[2].schedule.sensors.pump1"] == (
        line_of(text, "schedule: {type: run_hours"),
        "sensor 'pump1-current' is a current sensor, not run_hours")
    assert by_path["plans.rotation.duty_select.no-group"] == (line_of(text, "duty_select:"),
                                                             "unknown duty group 'no-group'")
    assert [m for _l, p, m in found if p == "plans.rotation.duty_select.no-group"][1] == (
        "sensor 'pump1-current' is a current sensor, not duty_select")
    assert by_path["plans.rotation.pressure.no-group"][1] == "unknown duty group 'no-group'"


def test_shape_errors_of_plans_name_the_field() -> None:
    text = MINIMAL + """
plans:
  plans:
    - id: mine
      scope: room
"""
    assert issues(text) == [(line_of(text, "plans:"), "plans",
                             "plan 'mine' is not built in: it needs 'name' and 'schedule'")]
    text = MINIMAL + """
plans:
  plans:
    - id: daily-round
      schedule: {type: every_days, at: 8:00}
"""
    assert issues(text) == [(line_of(text, "schedule:"), "plans.plans[0].schedule.at",
                             "write the time of day in quotes, like '08:00'")]


def test_plan_settings_refuse_inconsistent_plans() -> None:
    with pytest.raises(ValueError, match="a rotation plan has scope duty_group"):
        PlanSettings.model_validate({"plans": [{"id": "duty-rotation", "scope": "room"}]})
    with pytest.raises(ValueError, match="given twice"):
        PlanSettings.model_validate({"plans": [{"id": "weekly-sweep"}, {"id": "weekly-sweep"}]})
    with pytest.raises(ValueError, match="a number item needs"):
        PlanSettings.model_validate({"plans": [{"id": "weekly-sweep", "checklist": [
            {"key": "x", "text": {"zh": "x", "en": "x"}, "type": "number"}]}]})
    with pytest.raises(ValueError, match="not a day of every year"):
        PlanSettings.model_validate({"plans": [{"id": "pipe-anti-rust", "schedule": {
            "type": "yearly", "opens": "02-29", "due": "03-31"}}]})

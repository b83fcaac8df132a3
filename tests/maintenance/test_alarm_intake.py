"""The maintenance state's alarm intake on both databases: order kept through a failed apply."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

from maintenance.models import Alarm
from maintenance.service import MaintenanceService
from maintenance.vocab import AlarmState
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.backoff import Backoff
from pumpwatch.clock import FakeClock
from pumpwatch.settings import CollectorSettings, Settings
from pumpwatch.site import Severity, Site, Text
from pumpwatch.sitefile import load_site

HV = "harbour-view"  # the estate of examples/site.yaml

KEY = AlarmKey("pump-d1", "dry_run", HV)
MESSAGE = Text(zh="一号生活泵干转", en="Domestic pump 1 running dry")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "site.yaml"


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(EXAMPLE)


def _event(action: AlarmAction, ts: float) -> AlarmEvent:
    return AlarmEvent(action=action, key=KEY, severity=Severity.CRITICAL, ts=ts, room="dom", message=MESSAGE,
                      value=0.05, sensor="dom-pt-out")


def _count(state: MaintenanceService, what: str) -> float:
    return state.metrics.registry.get_sample_value(f"pumpwatch_alarm_events_{what}_total") or 0.0


def _alarms(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [(row.state, row.alarm_type) for row in conn.execute(select(Alarm.state, Alarm.alarm_type))]


async def test_a_raised_event_that_fails_once_is_still_applied_before_the_cleared_behind_it(
        site: Site, engine: Engine, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(collector=CollectorSettings(state_dir=tmp_path))
    state = MaintenanceService(site, settings, clock, engine, backoff=Backoff(first=0.01, cap=0.05))
    apply_change = state.alarms.apply_change
    failures = [OperationalError("INSERT INTO alarms", None, ConnectionResetError("database away"))]

    def database_away_once(event: AlarmEvent) -> object:
        if failures:
            raise failures.pop()
        return apply_change(event)

    monkeypatch.setattr(state.alarms, "apply_change", database_away_once)
    state.accept_event(_event(AlarmAction.RAISED, clock.now()))
    state.accept_event(_event(AlarmAction.CLEARED, clock.now() + 30))
    intake = asyncio.create_task(state.apply_events())
    try:
        async with asyncio.timeout(10):
            while _count(state, "applied") < 2:
                await asyncio.sleep(0.01)
    finally:
        intake.cancel()
        await asyncio.gather(intake, return_exceptions=True)
    assert not failures, "the first apply failed as arranged"
    assert _count(state, "retried") == 1
    assert _alarms(engine) == [(AlarmState.CLEARED.value, "dry_run")]


async def test_an_event_that_cannot_be_applied_is_refused_and_counted_and_the_next_one_applied(
        site: Site, engine: Engine, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(collector=CollectorSettings(state_dir=tmp_path))
    state = MaintenanceService(site, settings, clock, engine, backoff=Backoff(first=0.01, cap=0.05))
    apply_change = state.alarms.apply_change
    broken = _event(AlarmAction.RAISED, clock.now())

    def refuse_the_first(event: AlarmEvent) -> object:
        if event is broken:
            raise ValueError("an event no retry can fix")
        return apply_change(event)

    monkeypatch.setattr(state.alarms, "apply_change", refuse_the_first)
    state.accept_event(broken)
    state.accept_event(_event(AlarmAction.RAISED, clock.now() + 1))
    intake = asyncio.create_task(state.apply_events())
    try:
        async with asyncio.timeout(10):
            while _count(state, "applied") < 1:
                await asyncio.sleep(0.01)
    finally:
        intake.cancel()
        await asyncio.gather(intake, return_exceptions=True)
    assert _count(state, "refused") == 1
    assert _count(state, "retried") == 0
    assert _alarms(engine) == [(AlarmState.ACTIVE.value, "dry_run")]

"""The example site's rules against the pump-room model: each fault raises its alarm, normal days none."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.rules.engine import AlarmEngine
from collector.rules.rulebook import Rulebook
from pumpwatch.alarm_events import AlarmAction, AlarmEvent
from pumpwatch.clock import FakeClock
from pumpwatch.readings import Reading
from pumpwatch.site import Site
from pumpwatch.sitefile import load_site
from simulators.simulation import Simulation

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(EXAMPLE)


class Room:
    """The model on a fake clock, its sensors read every second into the alarm engine."""

    def __init__(self, site: Site, seed: int = 7) -> None:
        self.clock = FakeClock()
        self.sim = Simulation(site, self.clock, seed=seed)
        book = Rulebook(site)
        self.engine = AlarmEngine(book.rules, self.clock, history=book.history)
        self.events: list[AlarmEvent] = []
        self.engine.listeners.append(self.events.append)
        self.sensors = [s.id for _r, _e, s in site.iter_sensors()]
        self.devices = {p.sensor: d.id for d in site.modbus for p in d.points}
        self.silent_devices: set[str] = set()

    async def run(self, seconds: float) -> None:
        for _ in range(int(seconds)):
            await self.clock.advance(1.0)
            await self.sim.step()
            now = self.clock.now()
            offline = self.sim.signals.offline
            self.engine.on_readings([Reading(s, now, self.sim.signals.value(s)) for s in self.sensors
                                     if s not in offline and self.devices.get(s) not in self.silent_devices])
            self.engine.evaluate_all()

    def raised(self) -> set[str]:
        return {str(e.key) for e in self.events if e.action is AlarmAction.RAISED}


@pytest.mark.e2e  # A long simulated span: six hours of the model, read every second (about 9 s).
async def test_a_normal_day_raises_no_alarm(site: Site) -> None:
    room = Room(site)
    await room.run(6 * 3600)  # six hours across the morning demand peak
    assert room.raised() == set()


@pytest.mark.parametrize(("scenario", "expected", "within"), [
    ("flange_leak", "dom-ptank/leak", 5),
    ("pipe_burst", "dom-header/pressure_low", 120),
    ("dry_run", "dom-tank/level_low", 900),
    ("switch_manual", "dom-p1/switch_not_auto", 60),
    ("cabinet_overheat", "dom-cabinet/temperature_high", 1800),
    ("stuck_sensor", "dom-header-pressure/flatline", 1000),
    ("sensor_offline", "dom-floor-leak/no_data", 60),
    ("sump_blocked", "fire-sump/sump_blocked", 1800),
    ("bearing_wear", "dom-p1/bearing_wear", 3600),
])
async def test_each_fault_scenario_raises_its_alarm(site: Site, scenario: str, expected: str,
                                                    within: float) -> None:
    room = Room(site)
    await room.run(600)
    assert room.raised() == set()
    await room.sim.enable(scenario)
    await room.run(within)
    assert expected in room.raised()
    await room.sim.disable(scenario)


async def test_a_duty_pump_that_fails_to_start_raises_failed_start(site: Site) -> None:
    room = Room(site)
    await room.run(600)
    duty = "dom-p1" if room.sim.signals.value("dom-duty-select") == 1 else "dom-p2"
    await room.sim.enable("failed_start", duty)
    await room.run(1800)
    assert f"{duty}/failed_start" in room.raised()


async def test_a_dead_plc_raises_one_no_data_alarm_for_the_device(site: Site) -> None:
    room = Room(site)
    await room.run(60)
    room.silent_devices.add("plc-fire")
    await room.run(10)
    assert room.raised() == {"plc-fire/no_data"}
    room.silent_devices.clear()
    await room.run(2)
    cleared = {str(e.key) for e in room.events if e.action is AlarmAction.CLEARED}
    assert cleared == {"plc-fire/no_data"}

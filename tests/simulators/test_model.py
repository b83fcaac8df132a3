"""SiteModel physics on the example site: pressure control, tank, motors, run hours, determinism."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from pumpwatch.clock import FakeClock
from pumpwatch.site import Site
from pumpwatch.sitefile import load_site
from simulators.model import SUBSTEP, SiteModel, demand_at
from simulators.signals import SensorSignals
from simulators.simulation import Simulation

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
START = FakeClock().now()  # 2026-01-01T00:00Z = 08:00 in Asia/Shanghai, the morning peak
SEED = 20260101


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(EXAMPLE)


def model(site: Site, seed: int = SEED) -> SiteModel:
    return SiteModel(site, START, seed=seed)


def each_substep(m: SiteModel, seconds: float, check: Callable[[], None]) -> None:
    """Advance one integration step at a time, calling `check` after every step."""
    for _ in range(round(seconds / SUBSTEP)):
        m.advance(SUBSTEP)
        check()


def test_example_site_has_the_equipment_these_tests_rely_on(site: Site) -> None:
    m = model(site)
    assert set(m.rooms) == {"dom", "fire"}
    assert set(m.rooms["dom"].pumps) == {"dom-p1", "dom-p2"}
    assert set(m.rooms["fire"].pumps) == {"fire-p1", "fire-jockey", "fire-sewage"}
    assert m.rooms["dom"].tank is not None
    assert m.rooms["fire"].sump is not None
    assert m.local_hour() == pytest.approx(8.0)


def test_duty_pump_holds_header_pressure_in_its_band(site: Site) -> None:
    m = model(site)
    dom, fire = m.rooms["dom"], m.rooms["fire"]
    group = site.rooms[0].duty_groups[0]
    start, stop = group.control.start_pressure, group.control.stop_pressure
    p1 = dom.pumps["dom-p1"]
    starts = stops = 0
    prev_pressure, prev_running = dom.pressure, p1.running

    def check() -> None:
        nonlocal starts, stops, prev_pressure, prev_running
        assert 0.28 <= dom.pressure <= 0.47, dom.pressure
        assert 0.60 <= fire.pressure <= 0.85, fire.pressure
        if p1.running and not prev_running:
            starts += 1
            assert prev_pressure < start  # the controller starts the pump below the start pressure
        if prev_running and not p1.running:
            stops += 1
            assert prev_pressure >= stop  # ... and stops it only once the stop pressure is reached
        if p1.running:
            assert p1.flow > 0
        prev_pressure, prev_running = dom.pressure, p1.running

    each_substep(m, 1800, check)
    assert starts >= 10  # the duty pump cycles on the pressure band during the morning peak
    assert stops >= 10
    assert not fire.pumps["fire-p1"].running  # the jockey pump alone keeps the sprinkler main up


def test_tank_level_stays_between_empty_and_full(site: Site) -> None:
    m = model(site)
    dom = m.rooms["dom"]
    tank = dom.tank
    assert tank is not None
    levels: list[float] = []
    each_substep(m, 1800, lambda: levels.append(dom.tank_level))
    assert all(0.75 * tank.height <= x <= tank.height for x in levels)
    assert max(levels) <= 0.96 * tank.height  # the float valve closes before the tank overflows
    assert max(levels) > levels[0] + 0.1  # starting below the float valve band, the refill tops it up

    # Without refill the pumps draw the tank down: it empties but never goes below zero.
    dom.refill_blocked = True
    dom.tank_level = 0.6
    levels.clear()
    each_substep(m, 2400, lambda: levels.append(dom.tank_level))
    assert min(levels) < 0.05
    assert all(0.0 <= x <= tank.height for x in levels)
    assert levels == sorted(levels, reverse=True)  # only ever falls with the refill valve shut


def test_motor_current_is_near_rated_when_running_and_zero_when_stopped(site: Site) -> None:
    m = model(site)
    seen_running: set[str] = set()
    seen_stopped: set[str] = set()

    def check() -> None:
        for room in m.rooms.values():
            for pid, pump in room.pumps.items():
                rated = pump.spec.rated_current
                if pump.running:
                    seen_running.add(pid)
                    assert 0.75 * rated <= pump.current <= 1.15 * rated, (pid, pump.current)
                else:
                    seen_stopped.add(pid)
                    assert pump.current == 0.0, (pid, pump.current)

    for _ in range(3600):
        m.advance(1.0)
        check()
    assert {"dom-p1", "fire-sewage"} <= seen_running
    assert {"dom-p1", "dom-p2", "fire-p1"} <= seen_stopped


def test_winding_temperature_rises_with_a_lag_after_start(site: Site) -> None:
    m = model(site)
    p1, p2 = m.pump("dom-p1"), m.pump("dom-p2")
    m.advance(SUBSTEP)
    p1.run_request = True  # the remote run command keeps the pump running whatever the pressure
    temps: list[float] = [p1.winding_temp]
    for _ in range(180):
        m.advance(10.0)
        assert p1.running
        temps.append(p1.winding_temp)
    assert temps[1] - temps[0] < 2.0  # ten seconds after start the winding has barely warmed
    assert temps[-1] - temps[0] > 20.0  # half an hour later it is well above ambient
    warming = temps[:91]  # the first quarter hour, far below the temperature it settles at
    assert all(b > a for a, b in itertools.pairwise(warming))  # it warms steadily
    assert temps[60] - temps[0] > 0.5 * (temps[-1] - temps[0])  # first-order lag: quick, then slower
    assert p2.winding_temp < 26.0  # the standby that never ran stays near room temperature


def test_run_hours_count_only_running_time(site: Site) -> None:
    m = model(site)
    expected = {pid: 0.0 for room in m.rooms.values() for pid in room.pumps}
    pumps = {pid: m.pump(pid) for pid in expected}

    def check() -> None:
        for pid, pump in pumps.items():
            if pump.running:
                expected[pid] += SUBSTEP / 3600

    each_substep(m, 1800, check)
    for pid, pump in pumps.items():
        assert pump.run_hours == pytest.approx(expected[pid], rel=1e-9, abs=1e-12), pid
    assert pumps["dom-p1"].run_hours > 0.05
    assert pumps["dom-p1"].run_hours < 0.5  # it cycles: part of the half hour, not all of it
    assert pumps["dom-p2"].run_hours == 0.0
    assert pumps["fire-p1"].run_hours == 0.0


def _trajectory(site: Site, seed: int) -> list[tuple[float, ...]]:
    m = model(site, seed)
    out: list[tuple[float, ...]] = []
    for _ in range(120):
        m.advance(10.0)
        dom, fire = m.rooms["dom"], m.rooms["fire"]
        out.append((dom.pressure, dom.tank_level, dom.pumps["dom-p1"].current,
                    dom.pumps["dom-p1"].winding_temp, dom.voltage, fire.pressure, fire.sump_level,
                    fire.voltage))
    return out


def test_same_seed_gives_identical_trajectories(site: Site) -> None:
    assert _trajectory(site, 7) == _trajectory(site, 7)


def test_different_seed_gives_a_different_trajectory(site: Site) -> None:
    a, b = _trajectory(site, 7), _trajectory(site, 8)
    assert a != b
    voltage_a = [row[4] for row in a]
    voltage_b = [row[4] for row in b]
    assert sum(x != y for x, y in zip(voltage_a, voltage_b, strict=True)) > len(a) // 2
    # The noise stays small: supply voltage is 380 V within a few volts whatever the seed.
    assert all(370 < v < 390 for v in voltage_a + voltage_b)


def test_only_the_selected_duty_pump_of_a_group_runs(site: Site) -> None:
    m = model(site)
    p1, p2 = m.pump("dom-p1"), m.pump("dom-p2")
    ran: set[str] = set()

    def check() -> None:
        assert not (p1.running and p2.running)
        ran.update(pid for pid, p in (("dom-p1", p1), ("dom-p2", p2)) if p.running)

    each_substep(m, 900, check)
    assert ran == {"dom-p1"}

    m.set_duty("dom-duty", 1)
    m.advance(SUBSTEP)
    assert not p1.running
    ran.clear()
    each_substep(m, 900, check)
    assert ran == {"dom-p2"}
    assert m.rooms["dom"].duty_pump(site.rooms[0].duty_groups[0]) is p2

    with pytest.raises(KeyError):
        m.set_duty("no-such-group", 0)


def test_duty_select_signal_follows_and_sets_the_duty_pump(site: Site) -> None:
    m = model(site)
    signals = SensorSignals(site, m)
    assert signals.value("dom-duty-select") == 1.0
    assert signals.write("dom-duty-select", 2.0)
    assert m.rooms["dom"].duty_index["dom-duty"] == 1
    assert signals.value("dom-duty-select") == 2.0
    assert not signals.write("dom-header-pressure", 0.5)  # a measurement takes no command


def test_advance_moves_model_time_by_exactly_the_time_given(site: Site) -> None:
    m = model(site)
    m.advance(0.0)
    assert m.time == START
    m.advance(0.3)  # not a multiple of the sub-step
    assert m.time == pytest.approx(START + 0.3)
    m.advance(123.4)
    assert m.time == pytest.approx(START + 123.7)
    m.advance(3600)
    assert m.local_hour() == pytest.approx(9.0 + 123.7 / 3600, abs=1 / 3600)


def test_advancing_in_chunks_matches_advancing_at_once(site: Site) -> None:
    whole, chunked = model(site), model(site)
    whole.advance(600.0)
    for _ in range(600):
        chunked.advance(1.0)
    assert chunked.time == pytest.approx(whole.time)
    for rid, room in whole.rooms.items():
        other = chunked.rooms[rid]
        assert other.pressure == pytest.approx(room.pressure, rel=1e-6)
        assert other.tank_level == pytest.approx(room.tank_level, rel=1e-6)
        assert other.sump_level == pytest.approx(room.sump_level, rel=1e-6)
        for pid, pump in room.pumps.items():
            assert other.pumps[pid].running == pump.running
            assert other.pumps[pid].run_hours == pytest.approx(pump.run_hours, rel=1e-6)


async def test_simulation_step_catches_the_model_up_with_the_clock(site: Site) -> None:
    clock = FakeClock()
    sim = Simulation(site, clock, seed=SEED)
    assert sim.model.time == clock.now()
    await clock.advance(37.5)
    assert sim.model.time == START  # nothing moves until the simulation steps
    await sim.step()
    assert sim.model.time == pytest.approx(clock.now())
    before = sim.model.rooms["dom"].pressure
    await sim.step()  # the clock did not move: neither does the model
    assert sim.model.time == pytest.approx(START + 37.5)
    assert sim.model.rooms["dom"].pressure == before
    await clock.advance(3600)
    await sim.step()
    assert sim.model.time == pytest.approx(START + 3637.5)
    assert sim.model.local_hour() == pytest.approx(9.0 + 37.5 / 3600, abs=1 / 3600)


def test_household_demand_follows_the_time_of_day() -> None:
    assert demand_at(7.0) == 20
    assert demand_at(7.5) == pytest.approx(18.0)  # interpolated between 07:00 and 08:00
    assert demand_at(3.0) < demand_at(19.0)  # night trough, evening peak
    assert demand_at(23.5) == pytest.approx((4 + 2) / 2)  # wraps past midnight
    assert demand_at(24 + 7.0) == demand_at(7.0)

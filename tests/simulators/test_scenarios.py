"""Each fault scenario on the example site: its signature on the right signals, then recovery."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from pymodbus.client import AsyncModbusTcpClient

from pumpwatch.clock import FakeClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.registers import PointCodec
from pumpwatch.site import Pump, Severity, Site
from pumpwatch.sitefile import load_site
from simulators.modbus_server import DeviceServer
from simulators.model import CHANGEOVER_AFTER, SUMP_BAND
from simulators.scenarios import SCENARIOS, ScenarioError, parse_scenario, resolve_target
from simulators.simulation import Simulation

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
SEED = 42
WARM_UP = 600.0  # seconds of normal running before a fault, so the duty pump is cycling

Sample = dict[str, float]


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(EXAMPLE)


def threshold(site: Site, sensor_id: str, severity: Severity) -> float:
    """The site's alarm limit of one severity for a sensor."""
    sensor = site.sensor(sensor_id)
    return next(t.value for t in site.thresholds_for(sensor) if t.severity is severity)


def rated_current(site: Site, pump_id: str) -> float:
    for room in site.rooms:
        for eq in room.equipment:
            if isinstance(eq, Pump) and eq.id == pump_id:
                return eq.rated_current
    raise KeyError(pump_id)


@dataclass
class Rig:
    """A simulation on a fake clock, stepped by hand."""

    clock: FakeClock
    sim: Simulation

    async def run(self, seconds: float, every: float = 1.0, watch: Iterable[str] = ()) -> list[Sample]:
        """Advance `seconds` in steps of `every`, sampling the watched sensors after each step."""
        names = tuple(watch)
        out: list[Sample] = []
        for _ in range(round(seconds / every)):
            await self.clock.advance(every)
            await self.sim.step()
            out.append({s: self.sim.signals.value(s) for s in names})
        return out

    def value(self, sensor_id: str) -> float:
        return self.sim.signals.value(sensor_id)


async def rig(site: Site, warm_up: float = WARM_UP, broker: BrokerAddress | None = None,
              modbus_ports: dict[str, int] | None = None) -> Rig:
    clock = FakeClock()
    sim = Simulation(site, clock, seed=SEED, broker=broker, modbus_ports=modbus_ports)
    r = Rig(clock, sim)
    await r.run(warm_up, every=10.0)
    return r


def column(samples: list[Sample], sensor_id: str) -> list[float]:
    return [s[sensor_id] for s in samples]


def test_every_documented_scenario_exists() -> None:
    assert set(SCENARIOS) == {
        "flange_leak", "bearing_wear", "dry_run", "pipe_burst", "stuck_sensor", "sensor_offline",
        "switch_manual", "failed_start", "cabinet_overheat", "sump_blocked", "device_offline",
        "fire_test_run",
    }


# --- leaks and bursts -----------------------------------------------------------------------------

async def test_flange_leak_wets_the_floor_and_dries_after_repair(site: Site) -> None:
    r = await rig(site)
    watch = ("dom-floor-leak", "dom-header-pressure")
    assert r.value("dom-floor-leak") == 0.0
    assert await r.sim.enable("flange_leak") == "dom"
    early = await r.run(30, watch=watch)
    assert column(early, "dom-floor-leak") == [0.0] * 30  # a drip takes a while to reach the floor
    later = await r.run(60, watch=watch)
    assert later[-1]["dom-floor-leak"] == 1.0  # WET
    # A flange drip is small: the duty pump still holds the header in its band.
    assert all(0.28 <= p <= 0.47 for p in column(early + later, "dom-header-pressure"))

    await r.sim.disable("flange_leak")
    assert "flange_leak" not in r.sim.active
    after = await r.run(30, watch=watch)
    assert column(after, "dom-floor-leak") == [0.0] * 30  # DRY again


async def test_flange_leak_trips_the_flange_leak_sensor(site: Site) -> None:
    r = await rig(site)
    await r.sim.enable("flange_leak")
    await r.run(5)
    assert r.value("dom-flange-leak") == 1.0


async def test_pipe_burst_collapses_header_pressure_and_recovers(site: Site) -> None:
    r = await rig(site)
    watch = ("dom-header-pressure", "dom-floor-leak", "dom-p1-run", "dom-p1-current")
    major_low = threshold(site, "dom-header-pressure", Severity.MAJOR)  # 0.25 MPa
    assert r.value("dom-header-pressure") > major_low
    await r.sim.enable("pipe_burst")
    burst = await r.run(120, watch=watch)
    pressure = column(burst, "dom-header-pressure")
    assert min(pressure[:30]) < major_low  # collapses within half a minute
    critical_low = threshold(site, "dom-header-pressure", Severity.CRITICAL)  # 0.12 MPa
    assert max(pressure[-30:]) < critical_low  # and stays down although the pump runs flat out
    assert all(s["dom-p1-run"] == 1.0 for s in burst[-60:])
    assert all(s["dom-p1-current"] > 0.9 * rated_current(site, "dom-p1") for s in burst[-60:])
    assert all(s["dom-floor-leak"] == 1.0 for s in burst)  # a burst floods the floor at once

    await r.sim.disable("pipe_burst")
    after = await r.run(120, watch=watch)
    assert all(s["dom-floor-leak"] == 0.0 for s in after)
    assert all(0.28 <= p <= 0.47 for p in column(after[40:], "dom-header-pressure"))
    assert 0.0 in column(after, "dom-p1-run")  # back to cycling on the pressure band


# --- pumps and motors ------------------------------------------------------------------------------

async def test_bearing_wear_creeps_current_temperature_and_vibration_up(site: Site) -> None:
    worn, healthy = await rig(site), await rig(site)  # same seed: identical until the fault
    pump = await worn.sim.enable("bearing_wear")
    assert pump == "dom-p1"
    watch = ("dom-p1-run", "dom-p1-current", "dom-p1-temp", "dom-p1-vibration")
    a = await worn.run(1800, every=5.0, watch=watch)
    b = await healthy.run(1800, every=5.0, watch=watch)
    assert column(a, "dom-p1-run") == column(b, "dom-p1-run")  # wear does not change the control
    running = [(x, y) for x, y in zip(a, b, strict=True) if x["dom-p1-run"] == 1.0]
    assert len(running) > 20
    for x, y in running:
        assert x["dom-p1-current"] > 1.1 * y["dom-p1-current"]
    vib_minor = threshold(site, "dom-p1-vibration", Severity.MINOR)  # 4.5 mm/s, a site default
    vib_major = threshold(site, "dom-p1-vibration", Severity.MAJOR)  # 7.1 mm/s
    assert all(x["dom-p1-vibration"] > vib_major for x, _y in running)
    assert all(y["dom-p1-vibration"] < vib_minor for _x, y in running)
    # The winding warms with a lag: the gap to the healthy twin grows over the half hour.
    gap = [x["dom-p1-temp"] - y["dom-p1-temp"] for x, y in zip(a, b, strict=True)]
    assert 0 <= gap[0] < 2.0
    assert gap[-1] > 10.0
    assert gap[len(gap) // 2] < gap[-1]

    await worn.sim.disable("bearing_wear")
    a = await worn.run(1800, every=5.0, watch=watch)
    b = await healthy.run(1800, every=5.0, watch=watch)
    running = [(x, y) for x, y in zip(a, b, strict=True) if x["dom-p1-run"] == 1.0]
    assert running
    for x, y in running:
        assert x["dom-p1-current"] == pytest.approx(y["dom-p1-current"])
        assert x["dom-p1-vibration"] < vib_minor
    assert a[-1]["dom-p1-temp"] - b[-1]["dom-p1-temp"] < gap[-1] / 2  # cooling back towards healthy


async def test_dry_run_empties_the_tank_and_unloads_the_motor(site: Site) -> None:
    r = await rig(site)
    rated = rated_current(site, "dom-p1")
    watch = ("dom-tank-level", "dom-p1-run", "dom-p1-current", "dom-header-pressure")
    normal = await r.run(300, watch=watch)
    assert any(s["dom-p1-run"] == 1.0 and s["dom-p1-current"] > 0.75 * rated for s in normal)
    await r.sim.enable("dry_run")
    dry = await r.run(1800, every=5.0, watch=watch)
    level = column(dry, "dom-tank-level")
    assert min(level) < 0.05  # the tank runs down to (nearly) nothing
    assert min(level) >= 0.0
    assert level == sorted(level, reverse=True)  # no refill while it is cut off
    tail = dry[-60:]
    assert all(s["dom-p1-run"] == 1.0 for s in tail)  # the pump is still commanded on...
    assert all(0 < s["dom-p1-current"] < 0.4 * rated for s in tail)  # ...but pumps no water
    assert all(s["dom-header-pressure"] < 0.05 for s in tail)

    await r.sim.disable("dry_run")
    after = await r.run(1800, every=5.0, watch=watch)
    level = column(after, "dom-tank-level")
    assert level[-1] > 0.5
    assert level[-1] > level[0]
    assert any(s["dom-p1-run"] == 1.0 and s["dom-p1-current"] > 0.75 * rated for s in after)
    assert all(0.28 <= p <= 0.47 for p in column(after[-120:], "dom-header-pressure"))


async def test_switch_left_in_manual_hands_over_to_the_standby(site: Site) -> None:
    r = await rig(site)
    codes = site.sensor("dom-p1-switch").state_codes
    assert r.value("dom-p1-switch") == codes["AUTO"]
    watch = ("dom-p1-switch", "dom-p1-run", "dom-p2-run", "dom-p2-current", "dom-header-pressure")
    assert await r.sim.enable("switch_manual") == "dom-p1"
    manual = await r.run(300, watch=watch)
    assert all(s["dom-p1-switch"] == codes["MANUAL"] == 1 for s in manual)
    assert all(s["dom-p1-run"] == 0.0 for s in manual)  # automatic control no longer starts it
    assert any(s["dom-p2-run"] == 1.0 and s["dom-p2-current"] > 0 for s in manual)
    assert all(0.28 <= p <= 0.47 for p in column(manual, "dom-header-pressure"))

    await r.sim.disable("switch_manual")
    back = await r.run(300, watch=watch)
    assert all(s["dom-p1-switch"] == codes["AUTO"] for s in back)
    assert any(s["dom-p1-run"] == 1.0 for s in back)
    assert all(s["dom-p2-run"] == 0.0 for s in back)  # the duty pump is in charge again


async def test_failed_start_draws_no_current_then_the_standby_takes_over(site: Site) -> None:
    r = await rig(site)
    watch = ("dom-p1-run", "dom-p1-current", "dom-p2-run", "dom-p2-current", "dom-header-pressure")
    assert await r.sim.enable("failed_start") == "dom-p1"
    failed = await r.run(300, watch=watch)
    assert all(s["dom-p1-current"] == 0.0 for s in failed)
    commanded = [i for i, s in enumerate(failed) if s["dom-p1-run"] == 1.0]
    assert commanded  # the contactor closes (run feedback) but the motor draws nothing
    assert len(commanded) <= CHANGEOVER_AFTER + 1  # until the controller gives up on it
    assert all(s["dom-p1-run"] == 0.0 for s in failed[commanded[-1] + 1:])
    p2_running = [s for s in failed if s["dom-p2-run"] == 1.0]
    assert p2_running
    assert all(s["dom-p2-current"] > 0.75 * rated_current(site, "dom-p2") for s in p2_running)
    assert all(0.28 <= p <= 0.47 for p in column(failed[-120:], "dom-header-pressure"))

    await r.sim.disable("failed_start")
    back = await r.run(300, watch=watch)
    assert any(s["dom-p1-run"] == 1.0 and s["dom-p1-current"] > 0 for s in back)
    assert all(s["dom-p2-run"] == 0.0 for s in back)


async def test_failed_start_on_a_remote_run_command(site: Site) -> None:
    r = await rig(site)
    await r.sim.enable("failed_start", "fire-jockey")
    assert r.sim.signals.write("fire-jockey-cmd", 1.0)
    on = await r.run(30, watch=("fire-jockey-run", "fire-jockey-current"))
    assert all(s["fire-jockey-run"] == 1.0 and s["fire-jockey-current"] == 0.0 for s in on)
    await r.sim.disable("failed_start")
    on = await r.run(5, watch=("fire-jockey-run", "fire-jockey-current"))
    assert on[-1]["fire-jockey-current"] > 0.5 * rated_current(site, "fire-jockey")


async def test_a_fire_pump_test_run_draws_realistic_current_and_pressure_then_stops(site: Site) -> None:
    r = await rig(site)
    watch = ("fire-p1-run", "fire-p1-cmd", "fire-p1-current", "fire-main-pressure", "fire-p1-switch")
    shutoff = next(eq.shutoff_pressure for room in site.rooms for eq in room.equipment
                   if isinstance(eq, Pump) and eq.id == "fire-p1")
    rated = rated_current(site, "fire-p1")
    assert r.value("fire-p1-run") == 0.0  # the jockey pump alone holds the main
    assert await r.sim.enable("fire_test_run") == "fire-p1"
    run = await r.run(6 * 60, watch=watch)
    assert all(s["fire-p1-run"] == 1.0 and s["fire-p1-cmd"] == 1.0 for s in run)
    assert all(s["fire-p1-switch"] == 2.0 for s in run)  # AUTO: a start under automatic control
    settled = run[10:]
    # Loaded like a pump delivering most of its rated flow through the test valve: not the 30 % of a pump
    # running dry, not over its rating; the main rises to about 3/4 of the pump's shut-off pressure.
    assert all(0.7 * rated < s["fire-p1-current"] < 0.95 * rated for s in settled)
    assert all(0.7 * shutoff < s["fire-main-pressure"] < 0.85 * shutoff for s in settled)
    await r.sim.disable("fire_test_run")
    after = await r.run(120, watch=watch)
    assert after[-1]["fire-p1-run"] == 0.0
    assert after[-1]["fire-p1-current"] == 0.0
    assert after[-1]["fire-p1-cmd"] == 0.0


# --- cabinet and sump --------------------------------------------------------------------------

async def test_cabinet_overheats_when_its_fan_fails_and_cools_after_repair(site: Site) -> None:
    r = await rig(site)
    minor = threshold(site, "dom-cabinet-temp", Severity.MINOR)  # 45 °C
    major = threshold(site, "dom-cabinet-temp", Severity.MAJOR)  # 55 °C
    assert r.value("dom-cabinet-temp") < minor
    assert await r.sim.enable("cabinet_overheat") == "dom"
    hot = column(await r.run(1200, every=10.0, watch=("dom-cabinet-temp",)), "dom-cabinet-temp")
    assert hot == sorted(hot)  # climbing all the time
    assert hot[5] < minor  # with the thermal lag of the cabinet
    assert hot[-1] > major
    assert r.value("fire-cabinet-temp") < minor  # only the faulty room

    await r.sim.disable("cabinet_overheat")
    cool = column(await r.run(1800, every=10.0, watch=("dom-cabinet-temp",)), "dom-cabinet-temp")
    assert cool[:60] == sorted(cool[:60], reverse=True)  # cooling steadily at first
    assert cool[-1] < minor


async def test_blocked_sump_rises_while_the_sewage_pump_runs(site: Site) -> None:
    r = await rig(site)
    start_level, stop_level = SUMP_BAND
    alarm = threshold(site, "fire-sump-level", Severity.MAJOR)  # 1.6 m
    watch = ("fire-sump-level", "fire-sewage-run", "fire-sewage-current")
    rated = rated_current(site, "fire-sewage")
    assert await r.sim.enable("sump_blocked") == "fire"
    blocked = await r.run(3600, every=10.0, watch=watch)
    running = [i for i, s in enumerate(blocked) if s["fire-sewage-run"] == 1.0]
    assert len(running) > 10
    assert running == list(range(running[0], len(blocked)))  # started and never got it down
    assert blocked[running[0]]["fire-sump-level"] >= start_level - 0.01
    for i, j in itertools.pairwise(running):
        assert blocked[j]["fire-sump-level"] > blocked[i]["fire-sump-level"]
    assert blocked[-1]["fire-sump-level"] > alarm
    assert all(0 < blocked[i]["fire-sewage-current"] < 0.6 * rated for i in running)

    await r.sim.disable("sump_blocked")
    after = await r.run(1800, every=10.0, watch=watch)
    assert after[0]["fire-sewage-run"] == 1.0
    assert after[0]["fire-sewage-current"] > 0.8 * rated  # a clear pump moves its rated flow
    assert after[5]["fire-sump-level"] < after[0]["fire-sump-level"]
    stopped = [s for s in after if s["fire-sewage-run"] == 0.0]
    assert stopped  # pumped down to the stop level, the pump stops
    assert stopped[0]["fire-sump-level"] < stop_level + 0.05


# --- sensors and devices -------------------------------------------------------------------------

async def test_stuck_sensor_freezes_while_the_model_moves(site: Site) -> None:
    r = await rig(site)
    sensor = await r.sim.enable("stuck_sensor")
    assert sensor == "dom-header-pressure"
    frozen = r.value(sensor)
    true_pressure: list[float] = []
    for _ in range(120):
        await r.run(1)
        assert r.value(sensor) == frozen
        true_pressure.append(r.sim.model.rooms["dom"].pressure)
    assert max(true_pressure) - min(true_pressure) > 0.05  # the real pressure kept cycling

    await r.sim.disable("stuck_sensor")
    for _ in range(30):
        await r.run(1)
        assert r.value(sensor) == r.sim.model.rooms["dom"].pressure


class RecordingClient(mqtt.Client):
    """A paho client that records what would be published instead of sending it."""

    def __init__(self) -> None:
        super().__init__(CallbackAPIVersion.VERSION2, client_id="recorder")
        self.topics: list[str] = []

    def publish(self, topic: str, payload: mqtt.PayloadType = None, qos: int = 0,
                retain: bool = False, properties: Properties | None = None) -> mqtt.MQTTMessageInfo:
        self.topics.append(topic)
        return mqtt.MQTTMessageInfo(len(self.topics))


async def test_offline_wireless_sensor_stops_publishing(site: Site) -> None:
    r = await rig(site, warm_up=0.0, broker=BrokerAddress("127.0.0.1", 1))  # never connected
    sensors = r.sim.sensors
    assert sensors is not None
    client = RecordingClient()
    sensors.client = client
    period = r.sim.publish_period
    await r.run(period)
    assert "zigbee2mqtt/dom-floor-leak" in client.topics
    assert "zigbee2mqtt/fire-floor-leak" in client.topics

    sensor = await r.sim.enable("sensor_offline")
    assert sensor == "dom-floor-leak"
    assert r.sim.signals.offline == {"dom-floor-leak"}
    client.topics.clear()
    await r.sim.enable("pipe_burst")  # the floor gets wet: even a change is not reported
    await r.run(3 * period, every=period)
    assert r.value("dom-floor-leak") == 1.0
    assert "zigbee2mqtt/dom-floor-leak" not in client.topics
    assert client.topics.count("zigbee2mqtt/fire-floor-leak") >= 2  # the others carry on

    await r.sim.disable("sensor_offline")
    assert r.sim.signals.offline == set()
    client.topics.clear()
    await r.run(period)
    assert "zigbee2mqtt/dom-floor-leak" in client.topics


async def _read_input(server: DeviceServer, unit: int, address: int, count: int) -> list[int] | None:
    """Input registers from a simulated PLC, or None when it does not accept a connection."""
    client = AsyncModbusTcpClient(server.host, port=server.port, timeout=2, retries=0)
    try:
        if not await client.connect():
            return None
        response = await client.read_input_registers(address, count=count, device_id=unit)
        assert not response.isError(), response
        return list(response.registers)
    finally:
        client.close()


async def test_offline_plc_stops_answering_and_comes_back(site: Site) -> None:
    r = await rig(site, warm_up=0.0, modbus_ports={d.id: 0 for d in site.modbus})
    device = site.modbus[0]
    point = next(p for p in device.points if p.sensor == "dom-tank-level")
    codec = PointCodec.for_point(point, device)
    await r.sim.start()
    try:
        await r.run(60)
        server = r.sim.servers[device.id]
        port = server.port
        regs = await _read_input(server, device.unit, point.address, point.register_count)
        assert regs is not None
        assert codec.decode(regs) == pytest.approx(r.value("dom-tank-level"), abs=0.001)

        assert await r.sim.enable("device_offline") == device.id
        assert not server.online
        assert await _read_input(server, device.unit, point.address, point.register_count) is None
        other = r.sim.servers["plc-fire"]  # only the faulty PLC is down
        assert await _read_input(other, 2, 0, 1) is not None

        await r.run(60)  # the model keeps going while the PLC is away
        await r.sim.disable("device_offline")
        assert server.online
        assert server.port == port  # back on the same port
        regs = await _read_input(server, device.unit, point.address, point.register_count)
        assert regs is not None
        assert codec.decode(regs) == pytest.approx(r.value("dom-tank-level"), abs=0.001)
    finally:
        await r.sim.stop()


# --- names and targets -----------------------------------------------------------------------------

def test_unknown_scenario_name_is_rejected_with_the_known_names() -> None:
    with pytest.raises(ScenarioError, match="unknown scenario 'pipe_bust'") as err:
        parse_scenario("pipe_bust:dom")
    for name in SCENARIOS:
        assert name in str(err.value)


def test_scenario_spec_splits_name_and_target() -> None:
    assert parse_scenario("pipe_burst") == ("pipe_burst", None)
    assert parse_scenario("failed_start:dom-p2") == ("failed_start", "dom-p2")


def test_scenario_target_must_exist_in_the_site(site: Site) -> None:
    with pytest.raises(ScenarioError, match="no pump 'dom-p9'"):
        resolve_target(site, SCENARIOS["failed_start"], "dom-p9")
    with pytest.raises(ScenarioError, match="no room 'dom-p1'"):
        resolve_target(site, SCENARIOS["pipe_burst"], "dom-p1")
    assert resolve_target(site, SCENARIOS["sump_blocked"], None) == "fire"


async def test_enabling_an_unknown_scenario_changes_nothing(site: Site) -> None:
    r = await rig(site, warm_up=0.0)
    with pytest.raises(ScenarioError):
        await r.sim.enable("no_such_fault")
    with pytest.raises(ScenarioError):
        await r.sim.enable("failed_start", "dom-p9")
    assert r.sim.active == {}
    assert not r.sim.model.pump("dom-p1").fails_to_start
    await r.sim.disable("pipe_burst")  # disabling what is not on is a no-op
    assert r.sim.active == {}

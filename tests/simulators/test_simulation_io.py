"""A running Simulation on the wire: wireless sensors on a real Mosquitto, PLCs on Modbus TCP."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pymodbus.client import AsyncModbusTcpClient

from pumpwatch.clock import FakeClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.registers import PointCodec
from pumpwatch.site import ModbusDevice, ModbusPoint, Site
from pumpwatch.sitefile import load_site
from pumpwatch.wire import SIM_CONTROL_TOPIC
from simulators.mqtt_sensors import plan_devices
from simulators.simulation import Simulation
from tests.support.services import Mosquitto

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
DEADLINE = 15.0  # seconds to wait for a message or a reaction over the network


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(EXAMPLE)


class Inbox:
    """Messages received by a paho subscriber thread, waited for from the test's event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[tuple[str, bytes]] = []

    def add(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.messages.append((topic, payload))

    def find(self, topic: str, accept: Callable[[bytes], bool]) -> bytes | None:
        with self._lock:
            return next((p for t, p in self.messages if t == topic and accept(p)), None)

    async def wait_for(self, topic: str, accept: Callable[[bytes], bool] = lambda _p: True) -> bytes:
        deadline = time.monotonic() + DEADLINE
        while (found := self.find(topic, accept)) is None:
            if time.monotonic() > deadline:
                with self._lock:
                    seen = sorted({t for t, _p in self.messages})
                raise AssertionError(f"no matching message on {topic} within {DEADLINE}s; saw {seen}")
            await asyncio.sleep(0.02)
        return found


def subscriber(broker: BrokerAddress, topics: list[str], inbox: Inbox) -> tuple[mqtt.Client, threading.Event]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{uuid.uuid4().hex[:8]}")
    subscribed = threading.Event()

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any = None) -> None:
        c.subscribe([(t, 1) for t in topics])

    def on_subscribe(_c: mqtt.Client, _u: Any, _mid: Any, _codes: Any, _p: Any = None) -> None:
        subscribed.set()

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        inbox.add(msg.topic, bytes(msg.payload))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    return client, subscribed


def water_leak(expected: bool) -> Callable[[bytes], bool]:
    return lambda payload: json.loads(payload).get("water_leak") is expected


def point_of(device: ModbusDevice, sensor_id: str) -> ModbusPoint:
    return next(p for p in device.points if p.sensor == sensor_id)


async def test_simulation_publishes_wireless_sensors_and_serves_its_plcs(
    site: Site, mosquitto: Mosquitto
) -> None:
    broker = BrokerAddress.parse(mosquitto.url)
    clock = FakeClock()
    sim = Simulation(site, clock, seed=5, broker=broker,
                     modbus_ports={d.id: 0 for d in site.modbus},
                     client_id=f"test-sim-{uuid.uuid4().hex[:8]}")
    inbox = Inbox()
    sub, subscribed = subscriber(broker, sorted({m.subscription for m in site.mqtt}), inbox)
    dom_client: AsyncModbusTcpClient | None = None
    fire_client: AsyncModbusTcpClient | None = None
    try:
        assert await asyncio.to_thread(subscribed.wait, DEADLINE), "subscriber never got its SUBACK"
        await sim.start()

        # --- MQTT: each device publishes in the payload shape its topic map describes ------------
        await clock.advance(1.0)
        await sim.step()
        for leak in ("dom-floor-leak", "fire-floor-leak", "dom-flange-leak"):
            doc = json.loads(await inbox.wait_for(f"zigbee2mqtt/{leak}"))
            assert doc["water_leak"] is False  # a JSON boolean, as the mapping's type says
            assert doc["battery"] == sim.signals.value(f"{leak}-battery")
            assert doc["linkquality"] == 120
        for room in ("dom", "fire"):  # Tasmota with a DS18B20 probe
            doc = json.loads(await inbox.wait_for(f"tele/{room}-room-temp/SENSOR"))
            assert doc["DS18B20"]["Temperature"] == pytest.approx(
                sim.signals.value(f"{room}-room-temp"), abs=0.001)
            assert doc["TempUnit"] == "C"
            assert "water_leak" not in doc
        plain = await inbox.wait_for("sensors/dom/dom-filter-dp")  # a bare number
        assert float(plain.decode()) == pytest.approx(sim.signals.value("dom-filter-dp"), abs=0.001)
        assert inbox.find("zigbee2mqtt/dom-room-temp", lambda _p: True) is None
        assert inbox.find("zigbee2mqtt/dom-floor-leak-battery", lambda _p: True) is None

        await sim.enable("pipe_burst")  # floods the domestic room's floor at once
        await clock.advance(1.0)
        await sim.step()  # not due for a periodic publish: only the changed payload goes out
        await inbox.wait_for("zigbee2mqtt/dom-floor-leak", water_leak(True))
        await sim.disable("pipe_burst")
        await clock.advance(1.0)
        await sim.step()
        assert inbox.find("zigbee2mqtt/fire-floor-leak", water_leak(True)) is None

        # --- MQTT: the control topic switches scenarios on and off ------------------------------
        command = json.dumps({"scenario": "cabinet_overheat", "on": True})
        deadline = time.monotonic() + DEADLINE
        while "cabinet_overheat" not in sim.active:  # resent until the simulator has subscribed
            assert time.monotonic() < deadline, "control message never took effect"
            sub.publish(SIM_CONTROL_TOPIC, command, qos=1)
            await asyncio.sleep(0.2)
        assert sim.active["cabinet_overheat"] == ["dom"]
        assert sim.model.rooms["dom"].cabinet_fan_failed
        sub.publish(SIM_CONTROL_TOPIC, json.dumps({"scenario": "cabinet_overheat", "on": False}), qos=1)
        deadline = time.monotonic() + DEADLINE
        while "cabinet_overheat" in sim.active:
            assert time.monotonic() < deadline, "control message never took effect"
            await asyncio.sleep(0.02)
        assert not sim.model.rooms["dom"].cabinet_fan_failed

        # --- Modbus: registers decode to the model's values -------------------------------------
        served = {d.id: d for d in sim.served_site().modbus}
        dom, fire = served["plc-dom"], served["plc-fire"]
        assert dom.port == sim.servers["plc-dom"].port != 0
        dom_client = AsyncModbusTcpClient(dom.host, port=dom.port, timeout=2, retries=1)
        fire_client = AsyncModbusTcpClient(fire.host, port=fire.port, timeout=2, retries=1)
        assert await dom_client.connect()
        assert await fire_client.connect()

        duty = point_of(dom, "dom-duty-select")
        duty_codec = PointCodec.for_point(duty, dom)
        rr = await dom_client.read_holding_registers(duty.address, count=duty.register_count,
                                                     device_id=dom.unit)
        assert not rr.isError(), rr
        assert duty_codec.decode(list(rr.registers)) == sim.signals.value("dom-duty-select") == 1.0

        await clock.advance(120.0)
        await sim.step()
        for sensor_id, tolerance in (("dom-header-pressure", 0.0005), ("dom-tank-level", 0.0005),
                                     ("dom-p2-current", 1e-5), ("dom-cabinet-temp", 0.05),
                                     ("dom-header-flow", 1e-9)):
            point = point_of(dom, sensor_id)  # float32 CDAB, uint16/int16 scaled, float64...
            rr = await dom_client.read_input_registers(point.address, count=point.register_count,
                                                       device_id=dom.unit)
            assert not rr.isError(), rr
            decoded = PointCodec.for_point(point, dom).decode(list(rr.registers))
            assert decoded == pytest.approx(sim.signals.value(sensor_id), rel=1e-6, abs=tolerance)

        # --- Modbus: writing the duty select makes pump 2 the duty pump -------------------------
        wr = await dom_client.write_registers(duty.address, duty_codec.encode(2.0), device_id=dom.unit)
        assert not wr.isError(), wr
        assert sim.model.rooms["dom"].duty_index["dom-duty"] == 1
        rr = await dom_client.read_holding_registers(duty.address, count=1, device_id=dom.unit)
        assert duty_codec.decode(list(rr.registers)) == 2.0
        p1_run, p2_run = point_of(dom, "dom-p1-run"), point_of(dom, "dom-p2-run")
        p2_current = point_of(dom, "dom-p2-current")
        p2_ran = False
        for _ in range(120):
            await clock.advance(1.0)
            await sim.step()
            assert not sim.model.pump("dom-p1").running
            rr = await dom_client.read_input_registers(p1_run.address, count=1, device_id=dom.unit)
            status = list(rr.registers)  # both run bits share one status word
            assert PointCodec.for_point(p1_run, dom).decode(status) == 0.0
            p2 = PointCodec.for_point(p2_run, dom).decode(status)
            assert p2 == float(sim.model.pump("dom-p2").running)
            if p2 == 1.0:  # pump 2's current is a word-swapped (CDAB) float32
                p2_ran = True
                rr = await dom_client.read_input_registers(p2_current.address, count=2,
                                                           device_id=dom.unit)
                amps = PointCodec.for_point(p2_current, dom).decode(list(rr.registers))
                assert amps == pytest.approx(sim.model.pump("dom-p2").current, rel=1e-6)
                assert amps > 0.75 * 15.6  # rated 15.6 A
        assert p2_ran

        # --- Modbus: a remote run command starts the jockey pump --------------------------------
        cmd, run = point_of(fire, "fire-jockey-cmd"), point_of(fire, "fire-jockey-run")
        assert not sim.model.pump("fire-jockey").running
        wr = await fire_client.write_coil(cmd.address, True, device_id=fire.unit)
        assert not wr.isError(), wr
        assert sim.model.pump("fire-jockey").run_request
        await clock.advance(1.0)
        await sim.step()
        assert sim.model.pump("fire-jockey").running
        rr = await fire_client.read_discrete_inputs(run.address, count=1, device_id=fire.unit)
        assert not rr.isError(), rr
        assert rr.bits[0] is True
        rr = await fire_client.read_coils(cmd.address, count=1, device_id=fire.unit)
        assert rr.bits[0] is True
        current = point_of(fire, "fire-jockey-current")
        rr = await fire_client.read_input_registers(current.address, count=current.register_count,
                                                    device_id=fire.unit)
        amps = PointCodec.for_point(current, fire).decode(list(rr.registers))
        assert amps == pytest.approx(sim.model.pump("fire-jockey").current, rel=1e-6)
        assert amps > 0.5 * 8.2  # rated 8.2 A

        # A register that is no point of the map is refused and changes nothing.
        refused = await dom_client.write_register(duty.address + 1, 1, device_id=dom.unit)
        assert refused.isError()
        assert sim.signals.value("dom-duty-select") == 2.0
    finally:
        for client in (dom_client, fire_client):
            if client is not None:
                client.close()
        await sim.stop()
        sub.disconnect()
        sub.loop_stop()


def test_wireless_sensors_are_planned_on_the_topics_the_site_documents(site: Site) -> None:
    planned = {d.topic: {v.field: s.id for v, s in d.values} for d in plan_devices(site)}
    # The shapes examples/site.yaml documents next to each topic map: '{device}' fits any sensor
    # id, so a battery or a thermometer must not end up as a Zigbee water-leak detector.
    assert planned == {
        "zigbee2mqtt/dom-floor-leak": {"water_leak": "dom-floor-leak",
                                       "battery": "dom-floor-leak-battery"},
        "zigbee2mqtt/dom-flange-leak": {"water_leak": "dom-flange-leak",
                                        "battery": "dom-flange-leak-battery"},
        "zigbee2mqtt/fire-floor-leak": {"water_leak": "fire-floor-leak",
                                        "battery": "fire-floor-leak-battery"},
        "tele/dom-room-temp/SENSOR": {"DS18B20.Temperature": "dom-room-temp"},
        "tele/fire-room-temp/SENSOR": {"DS18B20.Temperature": "fire-room-temp"},
        "sensors/dom/dom-filter-dp": {None: "dom-filter-dp"},
    }
    mqtt_sensors = {s.id for _r, _e, s in site.iter_sensors() if s.source == "mqtt"}
    assert {sid for fields in planned.values() for sid in fields.values()} == mqtt_sensors

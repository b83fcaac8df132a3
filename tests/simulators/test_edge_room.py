"""The simulator serves examples/edge-room.yaml as the field wires it: an RTU line on a pseudo-terminal
pair, an RTU-over-TCP gateway, and a wireless gateway's id-keyed batch; the collector reads them all."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from collector.estates import source_view
from collector.metrics import CollectorMetrics
from collector.sources.modbus import DeviceState, ModbusCollector
from collector.sources.mqtt_decode import MqttDecoder
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock, SystemClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.registers import PointCodec
from pumpwatch.site import BusTransport, Site, Table
from pumpwatch.sitefile import load_site
from simulators.mqtt_sensors import encode_payload, plan_devices
from simulators.run import banner_lines
from simulators.simulation import Simulation
from tests.collector.test_modbus import RecordingSink, polling, until

EDGE_ROOM = Path(__file__).parents[2] / "examples" / "edge-room.yaml"


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(EDGE_ROOM)


def expected(site: Site, sim: Simulation, sensor: str) -> float:
    """The simulated value as its register carries it (scale, decimal-point code, float32)."""
    for device in site.modbus:
        for point in device.points:
            if point.sensor == sensor:
                codec = PointCodec.for_point(point, device)
                image = sim.buses.images[device.id]
                source = point.scale_from
                decimals = image.decimals[(source.table, source.address)] if source else 0
                return codec.decode(codec.encode(sim.signals.value(sensor), 0, decimals), decimals)
    raise KeyError(sensor)


async def test_the_edge_room_is_served_on_its_buses_and_read_by_site_file_alone(
        site: Site, tmp_path: Path) -> None:
    sim = Simulation(site, FakeClock(start=time.time()), modbus_ports={"gw-tank": 0},
                     serial_dir=tmp_path)
    await sim.start()
    try:
        served = sim.served_site()
        line, gateway = served.buses
        assert line.transport is BusTransport.SERIAL
        assert line.path == str(tmp_path / "rs485-1")
        assert (tmp_path / "rs485-1").is_symlink()  # the collector's end of the socat pair
        assert gateway.port not in (None, 5040)  # a free port, as asked
        text = "\n".join(banner_lines(sim, BrokerAddress("127.0.0.1", 1883)))
        assert f"Modbus bus rs485-1: serial {line.path} 9600 8N1 rtu, units 1=meter, 2=vfd-1" in text
        # The water-quality analyser polls every 10 s; a shorter interval keeps the test short.
        devices = tuple(d.model_copy(update={"poll_interval": 1.0}) if d.id == "water-quality" else d
                        for d in served.modbus)
        sink = RecordingSink()
        collector = ModbusCollector(devices, sink, CollectorMetrics(), SystemClock(), served.buses)
        modbus_sensors = {p.sensor for d in site.modbus for p in d.points}
        async with polling(collector):
            await until(lambda: {r.sensor for r in sink.readings} == modbus_sensors, 15)
            for sensor in sorted(modbus_sensors):
                assert sink.of(sensor)[-1].value == expected(site, sim, sensor), sensor
            # A drive trips: its fault code comes over the line (the site names code 1).
            sim.model.rooms["b2"].pumps["b2-p1"].tripped = True
            await until(lambda: sink.of("b2-p1-fault")[-1].value == 1.0)
            # A technician sets the transmitter to three decimals: the value keeps its meaning.
            sim.buses.images["pressure-tx"].set_decimals(Table.HOLDING, 3, 3)
            pressure = sim.signals.value("b2-pressure")
            await until(lambda: sink.of("b2-pressure")[-1].value == round(pressure, 3))
            # One drive falls silent: the line and its other units carry on.
            sim.set_device_offline("vfd-2", True)
            await until(lambda: collector.pollers["vfd-2"].health.state is DeviceState.OFFLINE, 10)
            count = len(sink.of("b2-voltage"))
            await until(lambda: len(sink.of("b2-voltage")) >= count + 2)
            assert all(collector.pollers[d].health.state is DeviceState.ONLINE
                       for d in ("meter", "vfd-1", "pressure-tx", "water-quality"))
    finally:
        await sim.stop()
    assert not (tmp_path / "rs485-1").exists()  # the simulated line is gone with the simulator


def test_the_wireless_gateway_batch_is_keyed_by_id_and_decodes_to_its_sensors(site: Site) -> None:
    (device,) = plan_devices(site)
    assert device.topic == "gw/b2/batch"
    values = {"b2-humidity": 61.8, "b2-door": 1.0, "b2-smoke": 0.0, "b2-floor-leak": 0.0,
              "b2-noise": 48.5}
    payload = encode_payload(device, values, 1_767_225_600.0)
    document = json.loads(payload)
    assert sorted(entry["id"] for entry in document["values"]) == ["door", "hum", "leak", "noise",
                                                                    "smoke"]
    document["values"].reverse()  # a gateway may send its entries in any order
    out = MqttDecoder(source_view(site).mqtt, SensorCatalog(site)).decode(
        "gw/b2/batch", json.dumps(document).encode(), 1_767_225_600.0)
    assert out.rejected == []
    assert {r.sensor: r.value for r in out.readings} == {f"edge-room/{k}": v for k, v in values.items()}

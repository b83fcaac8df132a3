"""A running simulation: the model on a clock, its PLCs on Modbus TCP, its wireless sensors on MQTT."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from pumpwatch.clock import Clock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.site import Site
from pumpwatch.wire import SIM_CONTROL_TOPIC, WireError, decode_sim_control
from simulators.modbus_bus_server import SimulatedBuses
from simulators.modbus_server import DeviceImage, DeviceServer
from simulators.model import SiteModel
from simulators.mqtt_sensors import MqttSensors
from simulators.scenarios import SCENARIOS, ScenarioError, parse_scenario, resolve_target
from simulators.signals import SensorSignals

log = logging.getLogger(__name__)


class Simulation:
    """Drives the model from a clock and serves it over Modbus TCP and MQTT."""

    def __init__(self, site: Site, clock: Clock, *, seed: int = 1,
                 broker: BrokerAddress | None = None, modbus_ports: dict[str, int] | None = None,
                 modbus_host: str | None = None, publish_period: float = 5.0,
                 tick: float = 0.5, client_id: str = "pumpwatch-sim",
                 serial_dir: Path | None = None) -> None:
        self.site = site
        self.clock = clock
        self.model = SiteModel(site, clock.now(), seed=seed)
        self.signals = SensorSignals(site, self.model)
        self.publish_period = publish_period
        self.tick = tick
        self.active: dict[str, list[str]] = {}  # scenario name -> the targets it acts on
        ports = modbus_ports or {}
        self.servers = {
            d.id: DeviceServer(DeviceImage(d, self.signals.value, self.signals.write),
                               modbus_host or d.host, ports.get(d.id, d.port))
            for d in site.modbus if d.bus is None
        }
        # Units on RS-485 buses: one RTU server per bus (`modbus_ports` may name a tcp bus's port).
        self.buses = SimulatedBuses(site, self.signals.value, self.signals.write, ports=ports,
                                    host=modbus_host, serial_dir=serial_dir)
        self.sensors = MqttSensors(site, broker, client_id) if broker is not None else None
        self._pending: list[Coroutine[Any, Any, None]] = []
        self._control_tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_publish = 0.0

    def served_site(self) -> Site:
        """The site with each Modbus device's host and port where its simulated PLC listens."""
        devices = tuple(d.model_copy(update={"host": self.servers[d.id].host,
                                             "port": self.servers[d.id].port})
                        if d.id in self.servers else d for d in self.site.modbus)
        return self.site.model_copy(update={"modbus": devices, "buses": self.buses.served_buses()})

    async def start(self) -> None:
        """Open the Modbus servers and connect the wireless sensors."""
        self._loop = asyncio.get_running_loop()
        for server in self.servers.values():
            await server.start()
        await self.buses.start()
        if self.sensors is not None:
            self._listen_for_control(self.sensors)  # before connecting: a quick CONNACK must find it
            self.sensors.start()

    async def stop(self) -> None:
        """Close everything that start opened."""
        for server in self.servers.values():
            await server.stop()
        await self.buses.stop()
        if self.sensors is not None:
            self.sensors.stop()

    async def run(self) -> None:
        """Advance the model with the clock, publishing wireless sensors, until cancelled."""
        while True:
            await self.step()
            await self.clock.sleep(self.tick)

    async def step(self) -> None:
        """Catch the model up with the clock and publish what is due."""
        now = self.clock.now()
        if now > self.model.time:
            self.model.advance(now - self.model.time)
        if self.sensors is not None:
            values = {s.id: self.signals.value(s.id) for _r, _e, s in self.site.iter_sensors()
                      if s.source == "mqtt"}
            due = now >= self._next_publish
            self.sensors.publish(values, now, self.signals.offline, only_changed=not due)
            if due:
                self._next_publish = now + self.publish_period
        while self._pending:
            await self._pending.pop(0)

    async def enable(self, name: str, target: str | None = None) -> str:
        """Switch a fault scenario on; returns the target it acts on."""
        scenario = SCENARIOS[parse_scenario(name)[0]]
        resolved = resolve_target(self.site, scenario, target)
        scenario.on(self, resolved)
        targets = self.active.setdefault(scenario.name, [])
        if resolved not in targets:
            targets.append(resolved)
        log.info("scenario %s on (%s)", scenario.name, resolved)
        while self._pending:
            await self._pending.pop(0)
        return resolved

    async def disable(self, name: str, target: str | None = None) -> None:
        """Switch a fault scenario off, on one target or (by default) on all of them."""
        targets = self.active.get(name, [])
        off = [t for t in targets if target is None or t == target]
        for t in off:
            SCENARIOS[name].off(self, t)
            targets.remove(t)
            log.info("scenario %s off (%s)", name, t)
        if not targets:
            self.active.pop(name, None)
        while self._pending:
            await self._pending.pop(0)

    def set_device_offline(self, device_id: str, offline: bool) -> None:
        """Stop or restart a device's Modbus server (done at the next step)."""
        bus = self.buses.server_of(device_id)
        if bus is not None:  # a unit on a bus falls silent; the line and the other units stay
            bus.set_unit_silent(self.buses.images[device_id].device.unit, offline)
            return
        server = self.servers[device_id]
        self._pending.append(server.stop() if offline else server.start())

    def _listen_for_control(self, sensors: MqttSensors) -> None:
        """Accept {"scenario": NAME, "target": ID, "on": true|false} on the control topic."""
        client = sensors.client

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
            c.subscribe(SIM_CONTROL_TOPIC, qos=1)

        def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            loop = self._loop
            if loop is not None:
                loop.call_soon_threadsafe(
                    lambda: self._keep(loop.create_task(self._control(msg.payload))))

        client.on_connect = on_connect
        client.on_message = on_message

    def _keep(self, task: asyncio.Task[None]) -> None:
        """Hold a reference to a control task until it is done."""
        self._control_tasks.add(task)
        task.add_done_callback(self._control_tasks.discard)

    async def _control(self, payload: bytes | bytearray) -> None:
        try:
            command = decode_sim_control(payload)
            if command.on:
                await self.enable(command.scenario, command.target)
            else:
                await self.disable(command.scenario, command.target)
        except (WireError, ScenarioError) as err:
            log.warning("ignored control message %r: %s", payload[:200], err)

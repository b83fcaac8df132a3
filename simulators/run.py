"""`pumpwatch simulate` and `pumpwatch demo`: start the simulators and tell the user where they are."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pumpwatch.broker import EmbeddedBroker, port_or_free
from pumpwatch.clock import ScaledClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.site import Site
from simulators.scenarios import SCENARIOS, ScenarioError, parse_scenario
from simulators.simulation import CONTROL_TOPIC, Simulation

__all__ = ["RunOptions", "ScenarioError", "run_simulation", "status_lines"]


@dataclass(frozen=True)
class RunOptions:
    """What the command line asked for."""

    speed: float = 1.0
    seed: int = 1
    scenarios: tuple[str, ...] = ()
    broker_url: str | None = None
    embedded_port: int = 1883
    status_every: float = 10.0
    modbus_port_base: int | None = None
    demo: bool = False


async def run_simulation(site: Site, options: RunOptions) -> int:
    """Run until cancelled; returns the exit code."""
    requested = [parse_scenario(spec) for spec in options.scenarios]  # fail before opening ports
    embedded: EmbeddedBroker | None = None
    if options.broker_url:
        broker = BrokerAddress.parse(options.broker_url)
    else:
        port = options.embedded_port
        if options.demo:  # the demo must start: a busy default port is swapped for a free one
            port = port_or_free(port)
        embedded = EmbeddedBroker(port=port)
        try:
            await embedded.start()
        except Exception as err:  # amqtt raises its own error types for a busy port
            raise RuntimeError(f"in-process MQTT broker on port {embedded.port}: {err}") from err
        broker = embedded.address
    ports = None
    if options.modbus_port_base is not None:
        base = options.modbus_port_base
        ports = {d.id: (base + i if base else 0) for i, d in enumerate(site.modbus)}
    elif options.demo:
        ports = {d.id: port_or_free(d.port, d.host) for d in site.modbus}
    sim = Simulation(site, ScaledClock(options.speed), seed=options.seed, broker=broker,
                     modbus_ports=ports)
    try:
        await sim.start()
        for name, target in requested:
            await sim.enable(name, target)
        print(_banner(site, sim, broker, options, embedded is not None), flush=True)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(sim.run(), name="simulation")
            tasks.create_task(_print_status(sim, options.status_every), name="status")
    finally:
        await sim.stop()
        if embedded is not None:
            await embedded.stop()
    return 0


def _banner(site: Site, sim: Simulation, broker: BrokerAddress, options: RunOptions,
            embedded: bool) -> str:
    what = "PumpWatch demo" if options.demo else "PumpWatch simulators"
    lines = [
        f"{what}: site {site.site.id} ({site.site.name.zh} / {site.site.name.en}), "
        f"speed x{options.speed:g}, seed {options.seed}",
        f"MQTT broker: {broker}{' (in-process)' if embedded else ''}",
        "  wireless sensors publish on: " + ", ".join(sorted({m.subscription for m in site.mqtt})),
    ]
    for device in site.modbus:
        server = sim.servers[device.id]
        lines.append(f"Modbus TCP: {device.id} at {server.host}:{server.port} unit {device.unit} "
                     f"({len(device.points)} points; register map in the site file)")
    lines += [
        "Fault scenarios: " + ", ".join(sorted(SCENARIOS)),
        f"  switch one on:  mosquitto_pub -h {broker.host} -p {broker.port} -t {CONTROL_TOPIC} "
        "-m '{\"scenario\": \"pipe_burst\", \"on\": true}'",
        "Press Ctrl+C to stop.",
    ]
    return "\n".join(lines)


def status_lines(sim: Simulation) -> list[str]:
    """One line per room: header pressure, tank or sump level, pumps, active scenarios."""
    lines = []
    for room_id, rs in sim.model.rooms.items():
        parts = [f"{room_id}: pressure {rs.pressure:.2f} MPa"]
        if rs.tank is not None:
            parts.append(f"tank {rs.tank_level:.2f} m")
        if rs.sump is not None:
            parts.append(f"sump {rs.sump_level:.2f} m")
        pumps = []
        for pid, ps in rs.pumps.items():
            state = f"RUN {ps.current:.1f} A" if ps.running else "stopped"
            if ps.switch != "AUTO":
                state += f" [{ps.switch}]"
            pumps.append(f"{pid} {state}")
        parts.append(", ".join(pumps))
        if rs.floor_leak:
            parts.append("FLOOR WET")
        faults = [name for name, target in sim.active.items()
                  if target == room_id or target in rs.pumps
                  or any(e.id == target for e in rs.room.equipment)]
        if faults:
            parts.append("faults: " + ", ".join(faults))
        lines.append(" | ".join(parts))
    return lines


async def _print_status(sim: Simulation, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        for line in status_lines(sim):
            print(line, flush=True)

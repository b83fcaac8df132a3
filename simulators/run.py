"""Start a simulation for the command line, and describe it to the person who started it."""

from __future__ import annotations

from pumpwatch.broker import port_or_free
from pumpwatch.clock import Clock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.site import BusTransport, Site
from pumpwatch.wire import SIM_CONTROL_TOPIC
from simulators.scenarios import SCENARIOS, ScenarioError, parse_scenario
from simulators.simulation import Simulation

__all__ = ["ScenarioError", "banner_lines", "start_simulation", "status_lines"]


async def start_simulation(site: Site, clock: Clock, broker: BrokerAddress, *, seed: int = 1,
                           scenarios: tuple[str, ...] = (), modbus_port_base: int | None = None,
                           free_ports_if_busy: bool = False, client_id: str = "pumpwatch-sim") -> Simulation:
    """Open the simulated PLCs and wireless sensors and switch the requested scenarios on.

    `client_id`: the wireless sensors' MQTT client (one per estate when several run in one process).
    """
    requested = [parse_scenario(spec) for spec in scenarios]  # fail before opening ports
    ports = None
    # Every Modbus TCP device listens on a port of its own; every tcp bus (RTU over TCP) on one.
    listeners = [(d.id, d.host, d.port) for d in site.modbus if d.bus is None]
    listeners += [(b.id, b.host or "127.0.0.1", b.tcp_port) for b in site.buses
                  if b.transport is BusTransport.TCP]
    if modbus_port_base is not None:
        base = modbus_port_base
        ports = {ident: (base + i if base else 0) for i, (ident, _h, _p) in enumerate(listeners)}
    elif free_ports_if_busy:
        ports = {ident: port_or_free(port, host) for ident, host, port in listeners}
    sim = Simulation(site, clock, seed=seed, broker=broker, modbus_ports=ports, client_id=client_id)
    await sim.start()
    try:
        for name, target in requested:
            await sim.enable(name, target)
    except BaseException:
        await sim.stop()
        raise
    return sim


def banner_lines(sim: Simulation, broker: BrokerAddress) -> list[str]:
    """Where the simulated devices listen and how to switch faults on."""
    site = sim.site
    lines = ["Simulated wireless sensors publish on: "
             + ", ".join(sorted({m.subscription for m in site.mqtt}))]
    for device in site.modbus:
        if device.bus is not None:
            continue
        server = sim.servers[device.id]
        lines.append(f"Modbus TCP: {device.id} at {server.host}:{server.port} unit {device.unit} "
                     f"(simulated PLC, {len(device.points)} points; `pumpwatch registers` prints the map)")
    for bus in sim.buses.served_buses():
        units = ", ".join(f"{d.unit}={d.id}" for d in site.units_on(bus.id))
        lines.append(f"Modbus bus {bus.id}: {bus.address}, units {units}")
    # With a broker that wants logins, the simulator's own identity may write its control topic.
    login = f" -u {broker.username} -P PASSWORD" if broker.username else ""
    tls = " --cafile CA.pem" if broker.tls else ""
    lines += [
        "Fault scenarios: " + ", ".join(sorted(SCENARIOS)),
        f"  switch one on:  mosquitto_pub -h {broker.host} -p {broker.port}{login}{tls} "
        f"-t {SIM_CONTROL_TOPIC} " + "-m '{\"scenario\": \"pipe_burst\", \"on\": true}'",
    ]
    return lines


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
        faults = [name for name, targets in sim.active.items() for target in targets
                  if target == room_id or target in rs.pumps
                  or any(e.id == target for e in rs.room.equipment)]
        if faults:
            parts.append("faults: " + ", ".join(faults))
        lines.append(" | ".join(parts))
    return lines

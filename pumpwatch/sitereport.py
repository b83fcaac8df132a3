"""Human-readable views of a site file: the one-line summary, the Modbus register map, the thresholds.

A deployment of several estates gets each estate's tables under its own heading (`per_estate`).
"""

from __future__ import annotations

from collections.abc import Callable

from pumpwatch.portfolio import Portfolio
from pumpwatch.registers import bus_cycle
from pumpwatch.site import Site
from pumpwatch.thresholds import site_thresholds


def summary(site: Site) -> str:
    """One line: what the site holds."""
    equipment = sum(len(r.equipment) for r in site.rooms)
    sensors = sum(1 for _ in site.iter_sensors())
    points = sum(len(d.points) for d in site.modbus)
    return (f"site {site.site.id} ({site.site.name.zh} / {site.site.name.en}), "
            f"{_count(len(site.rooms), 'room')}, {equipment} equipment, {_count(sensors, 'sensor')}, "
            f"{_count(len(site.modbus), 'Modbus device')} ({_count(points, 'point')}), "
            f"{_count(len(site.mqtt), 'MQTT topic map')}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def register_table(site: Site) -> str:
    """The Modbus register map of every device, as a Markdown table per device, then the buses."""
    sensors = {s.id: s for _r, _e, s in site.iter_sensors()}
    out: list[str] = []
    for device in site.modbus:
        bus = site.bus(device.bus) if device.bus is not None else None
        where = f"bus {bus.id} ({bus.address})" if bus is not None else f"{device.host}:{device.port}"
        out.append(f"### {device.id}: {where} unit {device.unit}, "
                   f"poll every {device.poll_interval:g} s")
        out.append("")
        out.append("| table | address | type | byte/word order | scale | sensor | kind | unit | access |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for p in sorted(device.points, key=lambda p: (p.table.value, p.address, p.bit or 0)):
            sensor = sensors[p.sensor]
            address = f"{p.address}" if p.register_count == 1 else \
                f"{p.address}-{p.address + p.register_count - 1}"
            if p.bit is not None:
                address += f" bit {p.bit}"
            byte_order = (p.byte_order or device.byte_order).value
            word_order = (p.word_order or device.word_order).value
            if p.table.is_bit_table or p.bit is not None:
                order = "-"
            elif p.register_count == 1:
                order = f"{byte_order}/-"
            else:
                order = f"{byte_order}/{word_order}"
            scale = f"{p.scale:g}" + (f" {p.offset:+g}" if p.offset else "")
            if p.scale_from is not None:
                scale += f" x 10^-n, n in {p.scale_from.table.value} {p.scale_from.address}"
            states = ", ".join(f"{code}={name}" for name, code in sensor.state_codes.items())
            unit = states or sensor.display_unit
            access = "read/write" if p.writable else "read"
            out.append(f"| {p.table.value} | {address} | {p.type.value} | {order} | {scale} | "
                       f"{p.sensor} | {sensor.kind.value} | {unit} | {access} |")
        out.append("")
    if site.buses:
        out += ["### buses: one poll cycle of every unit (one unit not answering)", "",
                "| bus | line | units | requests | cycle | shortest poll interval |",
                "|---|---|---|---|---|---|"]
        for bus in site.buses:
            units = site.units_on(bus.id)
            cycle = bus_cycle(bus, units)
            timing = (f"{cycle.seconds * 1000:.0f} ms | {cycle.shortest_interval:g} s"
                      if cycle is not None else "- | -")
            out.append(f"| {bus.id} | {bus.address} | {', '.join(f'{d.unit}={d.id}' for d in units)} "
                       f"| {cycle.requests if cycle is not None else 0} | {timing} |")
        out.append("")
    return "\n".join(out)


def threshold_table(site: Site) -> str:
    """The thresholds in force on every sensor, one row per threshold, with where each comes from."""
    out: list[str] = []
    room_id = None
    for found in site_thresholds(site):
        if found.room.id != room_id:
            room_id = found.room.id
            if out:
                out.append("")
            out += [f"### {found.room.id}: {found.room.name.zh} / {found.room.name.en}", "",
                    "| sensor | kind | on | when | value | severity | for | hysteresis | from |",
                    "|---|---|---|---|---|---|---|---|---|"]
        sensor = found.sensor
        on = found.equipment.id if found.equipment is not None else found.room.id
        head = f"| {sensor.id} | {sensor.kind.value} | {on} |"
        where = {"sensor": "sensor", "site default": f"site default ({found.basis})",
                 "default": f"default ({found.basis})", "none": "none"}[found.source]
        if not found.thresholds:
            out.append(f"{head} - | - | - | - | - | {where} |")
        unit = sensor.display_unit
        for t in found.thresholds:
            out.append(f"{head} {t.when.value} | {t.value:g} {unit} | {t.severity.value} | "
                       f"{t.for_seconds:g} s | {t.hysteresis:g} | {where} |")
    out.append("")
    return "\n".join(out)


def per_estate(portfolio: Portfolio, table: Callable[[Site], str]) -> str:
    """`table` of each estate; under a heading per estate when the deployment has several."""
    if len(portfolio) == 1:
        return table(portfolio.first)
    parts = []
    for site in portfolio:
        info = site.site
        parts.append(f"## estate {info.id}: {info.name.zh} / {info.name.en}\n\n{table(site)}")
    return "\n".join(parts)

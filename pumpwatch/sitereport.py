"""Human-readable views of a site file: the one-line summary and the Modbus register map."""

from __future__ import annotations

from pumpwatch.site import Site


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
    """The Modbus register map of every device, as a Markdown table per device."""
    sensors = {s.id: s for _r, _e, s in site.iter_sensors()}
    out: list[str] = []
    for device in site.modbus:
        out.append(f"### {device.id}: {device.host}:{device.port} unit {device.unit}, "
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
            states = ", ".join(f"{code}={name}" for name, code in sensor.state_codes.items())
            unit = states or sensor.display_unit
            access = "read/write" if p.writable else "read"
            out.append(f"| {p.table.value} | {address} | {p.type.value} | {order} | {scale} | "
                       f"{p.sensor} | {sensor.kind.value} | {unit} | {access} |")
        out.append("")
    return "\n".join(out)

"""What an edge and the centre each do with an estate that has `edges:`.

An edge belongs to one estate (`edge_estate`): an edge box reads its own estate's file, scoped to its rooms.

The edge reads only its own rooms: their sensors, the Modbus devices in them, the custom rules
about them; it runs their alarm rules and forwards the events. The centre runs every other rule and,
for each edge, the rules on the edge's own health sensors and `edge_offline`; it leaves the rules of
an edge's rooms to the edge, since it sees their readings late (after an outage, hours late), and
raising `no_data` for every sensor of a room whose link is down would drown the one alarm that
matters, `edge_offline`.
"""

from __future__ import annotations

from collections.abc import Sequence

from collector.rules.engine import AlarmRule
from collector.sources.edge import edge_offline_rules
from pumpwatch.portfolio import Portfolio
from pumpwatch.site import ModbusDevice, Site


def edge_estate(portfolio: Portfolio, edge_id: str) -> str:
    """The estate an edge belongs to (edge ids are unique across the deployment); KeyError if none has it."""
    estate = portfolio.edge_estates().get(edge_id)
    if estate is None:
        raise KeyError(edge_id)
    return estate


def scope_portfolio_to_edge(portfolio: Portfolio, edge_id: str) -> Portfolio:
    """What an edge box reads of a deployment: its own estate, scoped to its rooms (`scope_to_edge`)."""
    estate = edge_estate(portfolio, edge_id)
    return Portfolio.of(scope_to_edge(portfolio.estate(estate), edge_id), organisation=portfolio.organisation)


def scope_to_edge(site: Site, edge_id: str) -> Site:
    """The part of the site one edge reads: its rooms, their devices and rules; KeyError if unknown."""
    edge = site.edge(edge_id)
    rooms = set(edge.rooms)
    kept = tuple(room for room in site.rooms if room.id in rooms)
    sensors = {sensor.id for room, _eq, sensor in site.iter_sensors() if room.id in rooms}
    rules = tuple(rule for rule in site.rules if rule.when.sensors() <= sensors)
    devices = tuple(d for d in site.modbus if _room_of(site, d) in rooms)
    return site.model_copy(update={"rooms": kept, "modbus": devices, "rules": rules, "edges": (edge,)})


def centre_devices(site: Site) -> Site:
    """The site as the centre's sources see it: no devices of rooms an edge serves (the edge polls them)."""
    served = set(site.edge_rooms())
    if not served:
        return site
    kept = tuple(d for d in site.modbus if _room_of(site, d) not in served)
    return site.model_copy(update={"modbus": kept})


def _room_of(site: Site, device: ModbusDevice) -> str | None:
    """A device's room: its own `room`, else the room of the first of its points' sensors."""
    if device.room is not None:
        return device.room
    rooms = {sensor.id: room.id for room, _eq, sensor in site.iter_sensors()}
    return next((rooms[p.sensor] for p in device.points if p.sensor in rooms), None)


def health_sensors(site: Site) -> frozenset[str]:
    """The ids of every edge's health sensors."""
    return frozenset(s.id for edge in site.edges for s in edge.as_equipment().sensors)


def edge_rules(rules: Sequence[AlarmRule], site: Site) -> list[AlarmRule]:
    """The rules an edge runs (`site` scoped to it): all but those on its own health (the centre's)."""
    health = health_sensors(site)
    return [rule for rule in rules if not (rule.sensors and rule.sensors <= health)]


def centre_rules(rules: Sequence[AlarmRule], site: Site) -> list[AlarmRule]:
    """The rules the centre runs: those of rooms no edge serves, those on edge health, `edge_offline`."""
    if not site.edges:
        return list(rules)
    served = set(site.edge_rooms())
    health = health_sensors(site)
    kept = [rule for rule in rules
            if rule.room not in served or (rule.sensors and rule.sensors <= health)]
    return kept + edge_offline_rules(site)

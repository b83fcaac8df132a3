"""The monitoring centre's overview (监控中心): every estate's state in a few numbers and a colour.

Per estate and per pump room it counts

- `critical`, `major`, `minor`: open (active) alarms of that severity (minor counts warnings too), leaving
  out a switch-not-in-AUTO alarm that an approved exception silences (rule 4: nobody need act on it);
- `offline`: edges and devices with no reading within their stale window: an edge whose heartbeat is older
  than its `offline_after` (the window of its `edge_offline` alarm); a Modbus device none of whose sensors
  has a fresh reading; a wireless (MQTT) sensor without a fresh reading. A reading is fresh when its
  quality is not STALE and it is at most 3 expected periods old (the sensor's `expected_period`, else the
  site default): the rule by which the API marks a reading `stale`. The devices of a room served by an
  edge that is offline are not counted again: the edge explains them;
- `overdue`: open tasks (raised, assigned, in progress, sent back) past their resolution deadline.

The colour (`colour_of`): **red** with any open critical alarm; **amber** with a major alarm, an offline
edge or device, or an overdue task; else **green** (minor alarms and warnings are shown, not coloured: an
estate's own staff handle them). `attention` is the number a tile shows: critical + major + offline +
overdue. Estates are ordered most urgent first: by critical, then major, then offline, then overdue
(each descending), then minor, then id.

The figures come from two grouped queries over indexed columns (active alarms: the partial unique index
on active keys; overdue tasks: the state and due-time indexes) and the newest readings the caller
hands in (the API's live cache), so they cost the same with 2 or 200 estates' history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from maintenance.exception_models import SWITCH_ALARM, SwitchException
from maintenance.models import Alarm, Task, utc_from_epoch
from maintenance.scope import Scope
from maintenance.vocab import OPEN_TASK_STATES, AlarmState
from pumpwatch.catalog import SensorCatalog
from pumpwatch.portfolio import Portfolio, sensor_key
from pumpwatch.readings import Quality, Reading
from pumpwatch.site import Severity, Site

STALE_PERIODS = 3  # a reading older than this many expected periods is stale (as the API's `stale`)


class Colour(StrEnum):
    """How urgently an estate or room needs someone (see the module)."""

    RED = "red"
    AMBER = "amber"
    GREEN = "green"


@dataclass
class Counts:
    """What needs attention in an estate or a room."""

    critical: int = 0
    major: int = 0
    minor: int = 0
    offline: int = 0
    overdue: int = 0

    def add(self, other: Counts) -> None:
        """Add another place's counts to these."""
        self.critical += other.critical
        self.major += other.major
        self.minor += other.minor
        self.offline += other.offline
        self.overdue += other.overdue

    @property
    def attention(self) -> int:
        """The number a tile shows: what makes it red or amber."""
        return self.critical + self.major + self.offline + self.overdue

    @property
    def colour(self) -> Colour:
        """Red, amber or green (see the module)."""
        return colour_of(self)

    def urgency(self) -> tuple[int, int, int, int, int]:
        """A sort key: most urgent first when sorted ascending."""
        return (-self.critical, -self.major, -self.offline, -self.overdue, -self.minor)

    def as_json(self) -> dict[str, int]:
        """The counts as JSON."""
        return {"critical": self.critical, "major": self.major, "minor": self.minor,
                "offline": self.offline, "overdue": self.overdue}


def colour_of(counts: Counts) -> Colour:
    """Red with an open critical alarm; amber with a major alarm, something offline or overdue; else green."""
    if counts.critical:
        return Colour.RED
    if counts.major or counts.offline or counts.overdue:
        return Colour.AMBER
    return Colour.GREEN


@dataclass(frozen=True)
class RoomState:
    """One pump room's counts."""

    id: str
    name: dict[str, str]
    counts: Counts

    def as_json(self) -> dict[str, Any]:
        """The room as JSON."""
        return {"id": self.id, "name": self.name, "colour": self.counts.colour.value,
                "attention": self.counts.attention, "counts": self.counts.as_json()}


@dataclass(frozen=True)
class EstateState:
    """One estate's counts (its rooms' and its own: a task with no room) and its rooms'."""

    id: str
    name: dict[str, str]
    region: str | None
    group: str | None
    counts: Counts
    rooms: tuple[RoomState, ...]

    def as_json(self) -> dict[str, Any]:
        """The estate as JSON."""
        return {"id": self.id, "name": self.name, "region": self.region, "group": self.group,
                "colour": self.counts.colour.value, "attention": self.counts.attention,
                "counts": self.counts.as_json(), "rooms": [r.as_json() for r in self.rooms]}


@dataclass(frozen=True)
class Overview:
    """Every estate's state at `at` (epoch seconds), most urgent first."""

    at: float
    estates: tuple[EstateState, ...]

    def narrow(self, scope: Scope, region: str | None = None, group: str | None = None) -> list[EstateState]:
        """The estates in `scope`, of `region` and `group` when given, in urgency order."""
        return [e for e in self.estates if scope.covers(e.id) and (region is None or e.region == region)
                and (group is None or e.group == group)]


@dataclass(frozen=True)
class Device:
    """Something that goes offline as a whole: an edge, a Modbus device, a wireless sensor."""

    id: str
    room: str
    keys: tuple[str, ...]  # its sensors' keys: fresh when one of them has a fresh reading
    window: tuple[float, ...]  # seconds each key's reading stays fresh
    edge: bool = False


@dataclass(frozen=True)
class EstateLayout:
    """What an estate's site file says the overview needs: its devices and which edge serves which room."""

    devices: tuple[Device, ...]
    edge_of_room: Mapping[str, str]


def stale_window(site: Site, expected_period: float | None) -> float:
    """Seconds a sensor's reading stays fresh: 3 expected periods (the sensor's, else the site default)."""
    return STALE_PERIODS * (expected_period or site.defaults.expected_period)


def layout_of(site: Site, catalog: SensorCatalog) -> EstateLayout:
    """An estate's devices (see the module) from its site file and the sensors the catalog knows."""
    estate = site.site.id
    devices: list[Device] = []
    for edge in site.edges:
        devices.append(Device(edge.id, edge.rooms[0], (sensor_key(estate, edge.sensor_id("heartbeat")),),
                              (edge.offline_after,), edge=True))
    for device in site.modbus:
        infos = [info for p in device.points if (info := catalog.find(estate, p.sensor)) is not None]
        if infos:
            room = device.room or infos[0].room
            devices.append(Device(device.id, room, tuple(i.key for i in infos),
                                  tuple(stale_window(site, i.sensor.expected_period) for i in infos)))
    for place, _equipment, sensor in site.iter_sensors():
        if sensor.source == "mqtt":
            devices.append(Device(sensor.id, place.id, (sensor_key(estate, sensor.id),),
                                  (stale_window(site, sensor.expected_period),)))
    return EstateLayout(tuple(devices), site.edge_rooms())


class OverviewFigures:
    """Computes the overview from the state database, the site files and the newest readings."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._layouts: dict[str, tuple[Site, EstateLayout]] = {}  # rebuilt when an estate's file changes

    def layout(self, site: Site, catalog: SensorCatalog) -> EstateLayout:
        """The estate's layout, kept while its site object is the same (a reload replaces it)."""
        known = self._layouts.get(site.site.id)
        if known is not None and known[0] is site:
            return known[1]
        layout = layout_of(site, catalog)
        self._layouts[site.site.id] = (site, layout)
        return layout

    def watched_keys(self, portfolio: Portfolio, catalog: SensorCatalog) -> list[str]:
        """The sensor keys whose newest readings the overview needs."""
        return [key for site in portfolio for device in self.layout(site, catalog).devices
                for key in device.keys]

    def compute(self, portfolio: Portfolio, catalog: SensorCatalog, newest: Mapping[str, Reading],
                now: float) -> Overview:
        """Every estate's counts at `now` (epoch seconds), most urgent first."""
        at = utc_from_epoch(now)
        places: dict[tuple[str, str | None], Counts] = defaultdict(Counts)
        with self._sessions() as session:
            for estate, room, severity, count in self._open_alarms(session, at):
                counts = places[(estate, room)]
                if severity == Severity.CRITICAL.value:
                    counts.critical += count
                elif severity == Severity.MAJOR.value:
                    counts.major += count
                else:
                    counts.minor += count
            for estate, place, count in _overdue(session, at):
                places[(estate, place)].overdue += count
        for site in portfolio:
            self._offline(site, self.layout(site, catalog), newest, now, places)
        estates = [self._estate(site, places) for site in portfolio]
        estates.sort(key=lambda e: (e.counts.urgency(), e.id))
        return Overview(now, tuple(estates))

    @staticmethod
    def _estate(site: Site, places: Mapping[tuple[str, str | None], Counts]) -> EstateState:
        estate = site.site.id
        total = Counts()
        rooms = []
        known = {room.id for room in site.rooms}
        for room in site.rooms:
            counts = places.get((estate, room.id), Counts())
            total.add(counts)
            rooms.append(RoomState(room.id, room.name.model_dump(), counts))
        for (where, place), counts in places.items():  # tasks of no room, rooms a reload removed
            if where == estate and place not in known:
                total.add(counts)
        return EstateState(estate, site.site.name.model_dump(), site.site.region, site.site.group, total,
                           tuple(rooms))

    def _open_alarms(self, session: Session, at: datetime) -> list[tuple[str, str, str, int]]:
        """(estate, room, severity, count) of the active alarms nobody need act on left out."""
        rows = session.execute(
            select(Alarm.estate, Alarm.room, Alarm.severity, Alarm.asset, Alarm.alarm_type)
            .where(Alarm.state == AlarmState.ACTIVE.value)).all()
        silenced = _silenced(session, at, [(r.estate, r.asset, r.alarm_type) for r in rows
                                           if r.alarm_type.startswith(SWITCH_ALARM)])
        grouped: dict[tuple[str, str, str], int] = defaultdict(int)
        for row in rows:
            if (row.estate, row.asset, row.alarm_type) not in silenced:
                grouped[(row.estate, row.room, row.severity)] += 1
        return [(estate, room, severity, count) for (estate, room, severity), count in grouped.items()]

    @staticmethod
    def _offline(site: Site, layout: EstateLayout, newest: Mapping[str, Reading], now: float,
                 places: dict[tuple[str, str | None], Counts]) -> None:
        estate = site.site.id
        down_edges: set[str] = set()
        for device in layout.devices:
            if device.edge and not _fresh(device, newest, now):
                down_edges.add(device.id)
                places[(estate, device.room)].offline += 1
        for device in layout.devices:
            if device.edge or layout.edge_of_room.get(device.room) in down_edges:
                continue
            if not _fresh(device, newest, now):
                places[(estate, device.room)].offline += 1


def _fresh(device: Device, newest: Mapping[str, Reading], now: float) -> bool:
    """Whether one of the device's sensors has a reading within its window."""
    for key, window in zip(device.keys, device.window, strict=True):
        reading = newest.get(key)
        if reading is not None and reading.quality is not Quality.STALE and now - reading.ts <= window:
            return True
    return False


def _silenced(session: Session, at: datetime,
              keys: Sequence[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """Which of these (estate, asset, alarm type) keys an approved exception in force silences."""
    if not keys:
        return set()
    rows = session.execute(select(SwitchException.estate, SwitchException.asset, SwitchException.alarm_type)
                           .where(SwitchException.asset.in_(sorted({asset for _, asset, _ in keys})),
                                  SwitchException.state == "approved", SwitchException.starts_at <= at,
                                  SwitchException.ends_at > at)).all()
    wanted = set(keys)
    return {(r.estate, r.asset, r.alarm_type) for r in rows} & wanted


def _overdue(session: Session, at: datetime) -> list[tuple[str, str | None, int]]:
    """(estate, room, count) of the open tasks past their resolution deadline."""
    rows = session.execute(
        select(Task.estate, Task.room, func.count())
        .where(Task.state.in_(sorted(s.value for s in OPEN_TASK_STATES)), Task.due_at < at)
        .group_by(Task.estate, Task.room)).all()
    return [(estate, room, int(count)) for estate, room, count in rows]

"""Fast lookups over a deployment's sensors: where each sensor is and how to judge its values.

Sensors are looked up by their key, `<estate>/<sensor>` (`pumpwatch.portfolio.sensor_key`): sensor ids
are unique within an estate only. An estate's sensors can be swapped while readers look things up
(`replace_estate`, `remove_estate`: a reload): the table is replaced whole, never changed in place, so a
reader sees the estate before or after, never half of it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pumpwatch.portfolio import Portfolio, as_portfolio, sensor_key
from pumpwatch.site import COUNTER_KINDS, OPEN_CODE_KINDS, Sensor, SensorKind, Site


@dataclass(frozen=True, slots=True)
class SensorInfo:
    """A sensor with its place in the deployment (the tags every stored reading carries)."""

    id: str  # the sensor's id in its estate's site file
    site: str  # the estate's id (`site.id` of its file)
    room: str
    equipment: str  # the equipment id, or the room id for room-level sensors
    kind: SensorKind
    low: float | None  # valid range; None if unbounded
    high: float | None
    states: dict[int, str]  # state code -> name, for state sensors
    sensor: Sensor
    counter: bool = False  # only rises (energy): a fall is flagged COUNTER_RESET
    open_codes: bool = False  # every integer is a state (fault codes): unnamed ones are UNKNOWN_<code>
    # (low, high) with open ends at the largest finite floats when the valid range alone judges a value
    # (no states, no codes, not a counter): the validator's short way; None for the others
    range_only: tuple[float, float] | None = field(init=False)

    def __post_init__(self) -> None:
        plain = not self.states and not self.counter and not self.open_codes
        bounds = (-sys.float_info.max if self.low is None else self.low,
                  sys.float_info.max if self.high is None else self.high)
        object.__setattr__(self, "range_only", bounds if plain else None)

    @property
    def estate(self) -> str:
        """The estate's id."""
        return self.site

    @property
    def key(self) -> str:
        """`<estate>/<sensor>`: the sensor's key in the pipeline and the store."""
        return sensor_key(self.site, self.id)


def estate_sensors(site: Site) -> dict[str, SensorInfo]:
    """Every sensor of one estate by key."""
    found: dict[str, SensorInfo] = {}
    estate = site.site.id
    for room, equipment, sensor in site.iter_sensors():
        valid = sensor.valid_range
        low, high = valid if valid is not None else (None, None)
        info = SensorInfo(
            id=sensor.id,
            site=estate,
            room=room.id,
            equipment=equipment.id if equipment is not None else room.id,
            kind=sensor.kind,
            low=low,
            high=high,
            states={code: name for name, code in sensor.state_codes.items()},
            sensor=sensor,
            counter=sensor.kind in COUNTER_KINDS,
            open_codes=sensor.kind in OPEN_CODE_KINDS,
        )
        found[info.key] = info
    return found


class SensorCatalog:
    """Every sensor of a site or a whole deployment, by key (`<estate>/<sensor>`)."""

    def __init__(self, sites: Site | Portfolio) -> None:
        self.portfolio = as_portfolio(sites)
        self._by_key: dict[str, SensorInfo] = {}
        for site in self.portfolio:
            self._by_key.update(estate_sensors(site))
        self.listeners: list[Callable[[str], None]] = []  # told the estate whose sensors changed

    @property
    def site(self) -> Site:
        """The first estate's site (the only one of a single-estate deployment)."""
        return self.portfolio.first

    def get(self, key: str) -> SensorInfo | None:
        """The sensor's info, or None for a key the deployment does not know."""
        return self._by_key.get(key)

    def find(self, estate: str, sensor: str) -> SensorInfo | None:
        """The sensor `sensor` of `estate`, or None."""
        return self._by_key.get(sensor_key(estate, sensor))

    def in_estate(self, estate: str) -> Iterator[SensorInfo]:
        """The sensors of one estate."""
        return (info for info in self._by_key.values() if info.site == estate)

    def replace_estate(self, site: Site) -> None:
        """Put in one estate's sensors as its site now has them (a reload); others stay as they are."""
        estate = site.site.id
        table = {key: info for key, info in self._by_key.items() if info.site != estate}
        table.update(estate_sensors(site))
        self._by_key = table
        self.portfolio = self.portfolio.with_estate(site)
        self._changed(estate)

    def remove_estate(self, estate: str) -> None:
        """Take one estate's sensors out (its file was removed)."""
        self._by_key = {key: info for key, info in self._by_key.items() if info.site != estate}
        if estate in self.portfolio:
            self.portfolio = self.portfolio.without(estate)
        self._changed(estate)

    def _changed(self, estate: str) -> None:
        for listener in list(self.listeners):
            listener(estate)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def __iter__(self) -> Iterator[SensorInfo]:
        return iter(list(self._by_key.values()))

    def __len__(self) -> int:
        return len(self._by_key)

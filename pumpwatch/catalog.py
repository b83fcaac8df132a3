"""Fast lookups over a site's sensors: where each sensor is and how to judge its values."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pumpwatch.site import COUNTER_KINDS, OPEN_CODE_KINDS, Sensor, SensorKind, Site


@dataclass(frozen=True, slots=True)
class SensorInfo:
    """A sensor with its place in the site (the tags every stored reading carries)."""

    id: str
    site: str
    room: str
    equipment: str  # the equipment id, or the room id for room-level sensors
    kind: SensorKind
    low: float | None  # valid range; None if unbounded
    high: float | None
    states: dict[int, str]  # state code -> name, for state sensors
    sensor: Sensor
    counter: bool = False  # only rises (energy): a fall is flagged COUNTER_RESET
    open_codes: bool = False  # every integer is a state (fault codes): unnamed ones are UNKNOWN_<code>


class SensorCatalog:
    """Every sensor of a site by id."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self._by_id: dict[str, SensorInfo] = {}
        for room, equipment, sensor in site.iter_sensors():
            valid = sensor.valid_range
            low, high = valid if valid is not None else (None, None)
            self._by_id[sensor.id] = SensorInfo(
                id=sensor.id,
                site=site.site.id,
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

    def get(self, sensor_id: str) -> SensorInfo | None:
        """The sensor's info, or None for an id the site does not know."""
        return self._by_id.get(sensor_id)

    def __contains__(self, sensor_id: object) -> bool:
        return sensor_id in self._by_id

    def __iter__(self) -> Iterator[SensorInfo]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

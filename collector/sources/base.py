"""What every source is: something that runs until cancelled and hands its readings to the sink."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from collector.metrics import CollectorMetrics
from collector.pipeline.sink import ReadingSink
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import Clock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.portfolio import Portfolio
from pumpwatch.settings import Settings
from pumpwatch.site import Site

if TYPE_CHECKING:
    from collector.sources.mqtt_decode import TimeLane


class Source(Protocol):
    """A protocol adapter (Modbus, MQTT, ...).

    `run` reads until cancelled, pushing `Reading`s into the sink with an on-durable callback where
    the protocol can acknowledge, reconnecting by itself and raising only the project's own errors.
    Cancellation stops intake first, so nothing unacknowledged is lost.
    """

    name: str

    async def run(self) -> None:
        """Read until cancelled."""
        ...


@runtime_checkable
class CommandTarget(Protocol):
    """A source that can also write: command points such as remote run coils or duty select."""

    def can_write(self, sensor: str) -> bool:
        """Whether this source owns a writable point for `sensor`."""
        ...

    async def write(self, sensor: str, value: float) -> None:
        """Write `value` to the point of `sensor`."""
        ...


@dataclass(frozen=True)
class SourceContext:
    """What a source builder gets: the site, the settings and the pipeline's parts it feeds.

    `site` is one estate's site as its file has it (a source makes its readings' keys with
    `collector.estates.source_view`); a shared source reads every estate of `portfolio` (None: `site`
    alone). `lane`: the microseconds this collector's MQTT readings fall on (a shared-subscription
    group's member; None: every one).
    """

    site: Site
    settings: Settings
    sink: ReadingSink
    metrics: CollectorMetrics
    clock: Clock
    catalog: SensorCatalog
    broker: BrokerAddress | None
    portfolio: Portfolio | None = None
    lane: TimeLane | None = None


SourceBuilder = Callable[[SourceContext], Sequence[Source]]

"""Many estates in one collector: sensor keys in the pipeline, one alarm engine per estate.

Why keys, not a collector per estate: the load target is 200 estates x 2 rooms x 40 sensors at 1 Hz
through two collector processes, 16,000 readings a second. A `CollectorService` per estate would be 100
durable buffers (each with its own fsync per commit), 100 writers and 100 MQTT clients per process,
each committing a trickle. Instead one pipeline serves every estate of the process: a reading's
`sensor` is its key `<estate>/<sensor>` (`pumpwatch.portfolio.sensor_key`), one string as before, so
validation, the durable buffer, the writer and the MQTT intake are shared and unchanged, and the
store splits the key into its `estate` and `sensor` tags (once per series: the line-protocol key is
cached). The keys cost nothing per reading at the sources: a Modbus plan and an MQTT topic's targets
are resolved once, from `source_view`, whose ids are already keys; an edge batch is qualified once per
sensor of the batch.

What is per estate is what a reload swaps: its Modbus pollers (a task of their own), its alarm engine
(`EstateRules`: the pipeline's readings split by estate, each engine sees its own sensor ids, so the
rulebook, the rules and the alarm memory file stay those of one site file), its topic maps in the
shared MQTT source and its edges in the shared edge intake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from collector.rules.engine import AlarmEngine, AlarmRule
from pumpwatch.alarm_events import AlarmEvent, AlarmKey
from pumpwatch.clock import Clock
from pumpwatch.portfolio import sensor_key
from pumpwatch.readings import Reading
from pumpwatch.site import Severity, Site

log = logging.getLogger(__name__)

EventListener = Callable[[AlarmEvent], None]


def source_view(site: Site) -> Site:
    """The site as the collector's sources see it: sensor, device and bus ids made keys of its estate.

    Modbus points feed `<estate>/<sensor>`, topic maps resolve their sensor templates to keys, and
    devices and buses are named `<estate>/<id>` in logs and metrics (device ids repeat across estates).
    """
    estate = site.site.id

    def key(ident: str) -> str:
        return sensor_key(estate, ident)

    buses = tuple(bus.model_copy(update={"id": key(bus.id)}) for bus in site.buses)
    devices = tuple(device.model_copy(update={
        "id": key(device.id),
        "bus": key(device.bus) if device.bus is not None else None,
        "room": device.room,
        "points": tuple(p.model_copy(update={"sensor": key(p.sensor)}) for p in device.points)})
        for device in site.modbus)
    maps = tuple(mapping.model_copy(update={
        "values": tuple(v.model_copy(update={"sensor": key(v.sensor)}) for v in mapping.values)})
        for mapping in site.mqtt)
    return site.model_copy(update={"buses": buses, "modbus": devices, "mqtt": maps})


class EstateRules:
    """The alarm engines of the estates this collector serves, fed from the shared pipeline.

    `on_readings` (a pipeline hook) splits each batch the intake hands over by estate and hands each
    engine its estate's readings under their own sensor ids; `run` evaluates every engine once per tick. Every
    engine shares one list of listeners, so a listener added once hears every estate.
    """

    def __init__(self, clock: Clock, *, tick: float = 1.0) -> None:
        self.clock = clock
        self.tick = tick
        self.engines: dict[str, AlarmEngine] = {}
        self.listeners: list[EventListener] = []
        self._watched: dict[str, str] = {}  # sensor key -> the estate of a sensor a rule reads
        self._names: dict[str, dict[str, str]] = {}  # estate -> its keys in `_watched` -> their sensor ids
        # Whether this collector announces an estate's alarm events (a shared-subscription group's
        # member speaks for some of its estates, `collector.group`); the others' engines are muted.
        self.speaks_for: Callable[[str], bool] = lambda _estate: True

    def _watch(self, estate: str, engine: AlarmEngine | None) -> None:
        """The sensors the estate's rules read are now `engine`'s (none: the estate is gone)."""
        for key in self._names.pop(estate, ()):
            del self._watched[key]
        if engine is not None:
            names = self._names[estate] = {sensor_key(estate, sensor): sensor for sensor in engine.watched}
            self._watched.update(dict.fromkeys(names, estate))

    def put(self, estate: str, engine: AlarmEngine) -> None:
        """Serve an estate with `engine` (a reload: the old engine's view of recent readings carries over)."""
        old = self.engines.get(estate)
        if old is not None:
            keep = engine.view.keep
            engine.view = old.view
            engine.view.keep = keep
        engine.listeners = self.listeners
        if not self.speaks_for(estate):
            engine.mute()
        self.engines[estate] = engine
        self._watch(estate, engine)

    def assign_voices(self) -> int:
        """Mute the engines of estates another collector speaks for, unmute the others; how many speak."""
        speaking = 0
        for estate, engine in self.engines.items():
            if self.speaks_for(estate):
                if engine.speak():
                    log.info("estate %s: this collector now speaks for its alarms", estate)
                speaking += 1
            else:
                engine.mute()
        return speaking

    def remove(self, estate: str) -> AlarmEngine | None:
        """Stop evaluating an estate's rules (its file was removed); its engine, if it had one."""
        engine = self.engines.pop(estate, None)
        self._watch(estate, None)
        return engine

    @property
    def rules(self) -> list[AlarmRule]:
        """Every rule of every estate."""
        return [rule for engine in self.engines.values() for rule in engine.rules]

    def active(self) -> dict[AlarmKey, Severity]:
        """Alarms currently raised, every estate's (keys carry their estate)."""
        found: dict[AlarmKey, Severity] = {}
        for engine in self.engines.values():
            found.update(engine.active())
        return found

    def engine(self, estate: str) -> AlarmEngine:
        """One estate's engine; KeyError when this collector does not serve it."""
        return self.engines[estate]

    def on_readings(self, readings: Sequence[Reading]) -> None:
        """Pipeline hook: each estate's readings a rule reads to its engine, with their own sensor ids.

        The readings go as they are (under their keys), with the estate's key -> sensor id map: renaming
        each into a new `Reading` cost as much as the view's whole update of it.
        """
        groups: dict[str, list[Reading]] = {}
        watched = self._watched
        for r in readings:
            estate = watched.get(r.sensor)
            if estate is None:
                continue  # no rule reads it
            batch = groups.get(estate)
            if batch is None:
                batch = groups[estate] = []
            batch.append(r)
        for estate, batch in groups.items():
            engine = self.engines.get(estate)
            if engine is not None:
                engine.on_readings(batch, names=self._names[estate])

    def spoken(self) -> list[str]:
        """The estates whose rules this collector evaluates (it announces their alarms)."""
        return [estate for estate, engine in self.engines.items() if engine.speaking]

    def follow(self, event: AlarmEvent) -> None:
        """An alarm event another collector announced: a muted engine of its estate follows it."""
        engine = self.engines.get(event.key.estate)
        if engine is not None:
            engine.follow(event)

    def on_estate_readings(self, batches: Iterable[tuple[str, Sequence[Reading]]], *,
                           only_newer: bool = False) -> None:
        """`on_readings` for readings already split by estate, under their own sensor ids.

        `only_newer`: a reading not newer than the one the rules hold is left out (a share group's
        peer readings: one heard twice changes nothing).
        """
        for estate, readings in batches:
            engine = self.engines.get(estate)
            if engine is not None:
                watched = engine.watched
                engine.on_readings([r for r in readings if r.sensor in watched], only_newer=only_newer)

    def evaluate_all(self) -> None:
        """Evaluate every estate's rules now (the timer's job); one broken estate does not stop the others."""
        for estate, engine in list(self.engines.items()):
            try:
                engine.evaluate_all()
            except Exception:
                log.exception("alarm evaluation of estate %s failed", estate)

    async def run(self) -> None:
        """The timer: every estate's engine evaluates what time can change, once per tick, until cancelled."""
        while True:
            await self.clock.sleep(self.tick)
            self.evaluate_all()


def memory_path(state_dir: Path, estate: str) -> Path:
    """Where an estate's raised alarms are remembered across restarts."""
    return state_dir / "alarms" / f"{estate}.json"


def adopt_memory(state_dir: Path, estate: str) -> None:
    """The alarm memory of a collector from before estates (`alarms.json`) becomes its only estate's."""
    legacy, own = state_dir / "alarms.json", memory_path(state_dir, estate)
    if legacy.exists() and not own.exists():
        own.parent.mkdir(parents=True, exist_ok=True)
        legacy.replace(own)
        log.info("alarm memory %s taken over by estate %s (%s)", legacy, estate, own)

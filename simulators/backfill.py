"""A past week of readings for a fresh demo, so every trend chart has something to show at once.

The model runs on its own clock from a week ago up to `end`. Simulating every 0.2 s of a week would take
over a minute, so the history is sampled: every `step` seconds of past time the model runs `window`
seconds in its fine sub-steps (pumps start and stop, pressure and flow move as in real time) and every
sensor is read once; the slow quantities (tank and sump level, run hours) are then carried across the rest
of the step at the rate the window showed. A week at 5-minute steps with 10-second windows costs about
three seconds of computing, done in batches so the caller can store each batch as it comes. Run hours and
energy totals are left out: the live model starts them from zero.
"""

from __future__ import annotations

from collections.abc import Iterator

from pumpwatch.readings import Quality, Reading
from pumpwatch.site import SensorKind, Site
from simulators.model import SiteModel
from simulators.signals import SensorSignals

WEEK = 7 * 86400.0
ROTATE_EVERY = 2 * 86400.0  # the regulation's rotation of the domestic pair: every other day
# Totals that only rise start from zero in the live model: a week of them before would fall back at the start.
_LEFT_OUT = (SensorKind.RUN_HOURS, SensorKind.ENERGY)


def past_readings(site: Site, end: float, *, span: float = WEEK, step: float = 300.0, window: float = 10.0,
                  seed: int = 1, batch_steps: int = 48) -> Iterator[list[Reading]]:
    """Readings of every sensor of `site` from `end - span` up to (not including) `end`, one per `step`.

    Yielded in batches of `batch_steps` steps, oldest first. The readings carry state names for state
    sensors (RUNNING, AUTO, ...), as the collector stores them.
    """
    if not 0 < window <= step:
        raise ValueError(f"need 0 < window <= step, got window={window}, step={step}")
    start = end - span
    model = SiteModel(site, start, seed=seed)
    signals = SensorSignals(site, model)
    sensors = [(s.id, {code: name for name, code in s.state_codes.items()})
               for _r, _e, s in site.iter_sensors() if s.kind not in _LEFT_OUT]
    groups = [group.id for room in site.rooms for group in room.duty_groups]
    batch: list[Reading] = []
    slot = start
    steps = 0
    while slot < end:
        model.time = slot
        for group in groups:  # duty and standby take turns, so both pumps have a history
            model.set_duty(group, int((slot - start) // ROTATE_EVERY))
        before = _slow(model)
        model.advance(window)
        _carry(model, before, (step - window) / window)
        ts = slot + window
        for sensor_id, states in sensors:
            value = float(signals.value(sensor_id))
            state = states.get(round(value)) if states else None
            batch.append(Reading(sensor_id, ts, value, Quality.GOOD, state))
        slot += step
        steps += 1
        if steps % batch_steps == 0:
            yield batch
            batch = []
    if batch:
        yield batch


def _slow(model: SiteModel) -> dict[str, float]:
    """The quantities that change too slowly for a short window to show them moving much."""
    values: dict[str, float] = {}
    for room_id, room in model.rooms.items():
        values[f"{room_id}.tank"] = room.tank_level
        values[f"{room_id}.sump"] = room.sump_level
        for pump_id, pump in room.pumps.items():
            values[f"{pump_id}.hours"] = pump.run_hours
    return values


def _carry(model: SiteModel, before: dict[str, float], times: float) -> None:
    """Carry the slow quantities on `times` more windows at the rate the last window showed."""
    for room_id, room in model.rooms.items():
        if room.tank is not None:
            change = room.tank_level - before[f"{room_id}.tank"]
            room.tank_level = min(max(room.tank_level + change * times, 0.0), room.tank.height)
        if room.sump is not None:
            change = room.sump_level - before[f"{room_id}.sump"]
            room.sump_level = min(max(room.sump_level + change * times, 0.0), room.sump.depth)
        for pump_id, pump in room.pumps.items():
            pump.run_hours += (pump.run_hours - before[f"{pump_id}.hours"]) * times

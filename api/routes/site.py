"""The estates as configured: rooms, equipment and sensors (any signed-in user).

`estate` names the estate of a deployment of several (422 without it where a room is meant).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import CallerScope, Ctx, CurrentUser
from maintenance.errors import NotFound
from pumpwatch.site import Pump, Room, Site
from pumpwatch.thresholds import InForce, site_thresholds

router = APIRouter(prefix="/api", tags=["site"])


def _room(room: Room) -> dict[str, Any]:
    return {
        "id": room.id,
        "name": room.name.model_dump(),
        "sensors": [s.id for s in room.sensors],
        "equipment": [
            {"id": e.id, "type": getattr(e, "type", "equipment"),
             "name": e.name.model_dump() if e.name else {"zh": e.id, "en": e.id},
             "kind": e.kind.value if isinstance(e, Pump) else None,
             "rated_current": e.rated_current if isinstance(e, Pump) else None,
             "duty_group": e.duty_group if isinstance(e, Pump) else None,
             "sensors": [s.id for s in e.sensors]}
            for e in room.equipment],
        "duty_groups": [{"id": g.id, "pumps": list(g.pumps)} for g in room.duty_groups],
    }


@router.get("/site")
def site(ctx: Ctx, _user: CurrentUser, estate: str | None = None) -> dict[str, Any]:
    """The estate's site, its rooms and equipment."""
    s = ctx.estate_site(estate)
    return {"id": s.site.id, "name": s.site.name.model_dump(), "timezone": s.site.timezone,
            "region": s.site.region, "group": s.site.group, "rooms": [_room(r) for r in s.rooms]}


@router.get("/estates")
def estates(ctx: Ctx, _user: CurrentUser, scope: CallerScope, region: str | None = None,
            group: str | None = None) -> dict[str, Any]:
    """The estates in the caller's scope (every one for the whole organisation), with their rooms.

    Every route that takes `?estate=` has the estate-qualified form `/api/estates/{estate}/...` too
    (api/estate_paths.py): `/api/estates/{estate}/rooms/{room}/latest`, `.../sensors`, `.../tasks`, ...
    """
    data = [_estate(e, s) for e in scope.narrow(ctx.portfolio.estates) if (s := ctx.portfolio.estate(e))
            and (region is None or s.site.region == region) and (group is None or s.site.group == group)]
    return {"data": data, "count": len(data)}


@router.get("/estates/{estate}")
def one_estate(estate: str, ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    """One estate of the caller's scope with its rooms (404 outside it, as for an unknown estate)."""
    chosen = ctx.estate(estate)
    return _estate(chosen, ctx.portfolio.estate(chosen))


def _estate(estate: str, s: Site) -> dict[str, Any]:
    return {"id": estate, "name": s.site.name.model_dump(), "region": s.site.region, "group": s.site.group,
            "timezone": s.site.timezone,
            "rooms": [{"id": r.id, "name": r.name.model_dump()} for r in s.rooms]}


@router.get("/rooms/{room_id}")
def room(room_id: str, ctx: Ctx, _user: CurrentUser, estate: str | None = None) -> dict[str, Any]:
    """One room."""
    for r in ctx.estate_site(estate).rooms:
        if r.id == room_id:
            return _room(r)
    raise NotFound("room", room_id)


def _limits(found: InForce | None) -> list[dict[str, Any]]:
    """The thresholds in force on a sensor, as the alarm rules apply them (pumpwatch/thresholds.py)."""
    if found is None:
        return []
    return [{"when": t.when.value, "value": t.value, "severity": t.severity.value, "hysteresis": t.hysteresis,
             "for_seconds": t.for_seconds} for t in found.thresholds]


@router.get("/sensors")
def sensors(ctx: Ctx, _user: CurrentUser, scope: CallerScope, room: str | None = None,
            estate: str | None = None) -> dict[str, Any]:
    """Every sensor with its estate, place, unit, range, states and the alarm thresholds in force on it.

    `thresholds` lets a screen colour a value beyond a limit at once, while its alarm still waits out its
    `for_seconds`; `threshold_source` says where they come from (sensor, site default, default, none).
    Every estate's sensors, or those of `estate` (a room is one estate's: `room` needs it, or one estate).
    """
    wanted = ctx.estate(estate) if estate is not None or room is not None else None
    estates = [wanted] if wanted is not None else scope.narrow(ctx.portfolio.estates)
    data: list[dict[str, Any]] = []
    for name in estates:
        in_force = {found.sensor.id: found for found in site_thresholds(ctx.portfolio.estate(name))}
        data += [{"id": i.id, "estate": i.estate, "room": i.room, "equipment": i.equipment,
                  "kind": i.kind.value, "unit": i.sensor.display_unit,
                  "name": i.sensor.name.model_dump() if i.sensor.name else None,
                  "range": list(i.sensor.range) if i.sensor.range else None, "states": i.sensor.state_codes,
                  "source": i.sensor.source, "thresholds": _limits(in_force.get(i.id)),
                  "threshold_source": found.source if (found := in_force.get(i.id)) is not None else "none"}
                 for i in ctx.catalog.in_estate(name) if room is None or i.room == room]
    return {"data": data, "count": len(data)}

"""Latest readings per room and downsampled history (any signed-in user).

A room or sensor id is one of an estate (`estate`: needed when the deployment has several).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import Ctx, CurrentUser
from api.schemas import HistoryPointOut, Page, ReadingOut
from maintenance.errors import InvalidInput, NotFound
from pumpwatch.readings import Quality, Reading

router = APIRouter(prefix="/api", tags=["readings"])
ReadingPage = Page[ReadingOut]
MAX_POINTS = 5000  # per history request: ask for a larger step beyond that


def reading_out(ctx: Ctx, reading: Reading, now: float) -> ReadingOut:
    """A reading (by sensor key) with its sensor id, unit, kind and whether it is stale."""
    info = ctx.catalog.get(reading.sensor)
    assert info is not None
    site = ctx.portfolio.estates.get(info.estate, ctx.site)
    period = info.sensor.expected_period or site.defaults.expected_period
    stale = reading.quality is Quality.STALE or now - reading.ts > 3 * period
    return ReadingOut(sensor=info.id, ts=reading.ts, value=reading.value,
                      quality=reading.quality.name.lower(), state=reading.state,
                      unit=info.sensor.display_unit, kind=info.kind.value, equipment=info.equipment,
                      stale=stale)


@router.get("/rooms/{room_id}/latest", response_model=ReadingPage)
async def latest(room_id: str, ctx: Ctx, _user: CurrentUser, estate: str | None = None) -> Response:
    """The newest reading of every sensor of a room."""
    estate = ctx.estate(estate)
    if not any(r.id == room_id for r in ctx.portfolio.estate(estate).rooms):
        raise NotFound("room", room_id)
    sensors = [i.key for i in ctx.catalog.in_estate(estate) if i.room == room_id]
    found = await ctx.newest(sensors)
    now = ctx.clock.now()
    data = [reading_out(ctx, found[s], now) for s in sensors if s in found]
    # Serialised once here; FastAPI would otherwise validate the returned page a second time.
    return Response(ReadingPage(data=data, count=len(data)).model_dump_json(), media_type="application/json")


@router.get("/sensors/{sensor_id}/history", response_model=Page[HistoryPointOut])
async def history(sensor_id: str, ctx: Ctx, _user: CurrentUser,
                  start: Annotated[float, Query(description="epoch seconds")],
                  end: Annotated[float, Query(description="epoch seconds")],
                  step: Annotated[float, Query(gt=0, le=86400 * 31, description="seconds per point")],
                  estate: str | None = None) -> Page[HistoryPointOut]:
    """Mean, min, max and count per step over [start, end): the points of that estate's sensor."""
    key = ctx.sensor_key(estate, sensor_id)
    if key not in ctx.catalog:
        raise NotFound("sensor", sensor_id)
    if not end > start:
        raise InvalidInput("end must be after start")
    if (end - start) / step > MAX_POINTS:
        raise InvalidInput(f"at most {MAX_POINTS} points per request: use a step of at least "
                           f"{(end - start) / MAX_POINTS:.0f} s")
    points = await ctx.store.history(key, start, end, step)
    data = [HistoryPointOut(ts=p.ts, mean=p.mean, min=p.min, max=p.max, count=p.count) for p in points]
    return Page(data=data, count=len(data))

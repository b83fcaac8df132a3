"""Maintenance plans as each estate's site file defines them, and the calendar of upcoming occurrences.

`estate` names the estate (needed when the deployment has several).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import Ctx, CurrentUser
from maintenance.calendar import site_occurrences
from maintenance.errors import NotFound
from maintenance.estates import estate_key
from maintenance.models import utc_from_epoch

router = APIRouter(prefix="/api", tags=["plans"])


@router.get("/plans")
def plans(ctx: Ctx, _user: CurrentUser, estate: str | None = None) -> dict[str, Any]:
    """Every plan in force, with its schedule, scope and checklist (any signed-in user)."""
    data = [plan.model_dump(mode="json") for plan in ctx.estate_site(estate).plans.effective()]
    return {"data": data, "count": len(data)}


@router.get("/calendar")
def calendar(ctx: Ctx, _user: CurrentUser, room: str | None = None, plan: str | None = None,
             days: Annotated[int, Query(ge=1, le=400)] = 30, estate: str | None = None) -> dict[str, Any]:
    """Occurrences due in the next `days` days for the estate or one of its rooms, soonest first."""
    place = ctx.estate(estate)
    site = ctx.portfolio.estate(place)
    if room is not None and not any(r.id == room for r in site.rooms):
        raise NotFound("room", room)
    chosen = None
    if plan is not None:
        try:
            chosen = [site.plans.plan(plan)]
        except KeyError as err:
            raise NotFound("plan", plan) from err
    start = utc_from_epoch(ctx.clock.now())
    found = site_occurrences(site, start, start + timedelta(days=days), plans=chosen)
    data = [{"plan": o.plan, "plan_key": estate_key(place, o.plan_key), "target": o.target.id,
             "target_name": o.target.name.model_dump(), "room": o.target.room, "asset": o.target.asset,
             "due_at": o.due_at.isoformat(), "opens_at": o.opens_at.isoformat(), "status": o.status,
             "reason": o.reason}
            for o in found if room is None or o.target.room == room]
    return {"data": data, "count": len(data)}

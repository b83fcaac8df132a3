"""The monitoring centre's overview: the estates in the caller's scope, most urgent first (anyone signed in).

The figures and the colour rule are `maintenance.overview`'s. One computation serves every caller for
`CACHE_SECONDS` (2 s): fifty operator screens polling or streaming would otherwise each run the queries and
scan the newest readings of every device of 200 estates; two seconds is below what a person watching a
wall of tiles notices, and the alarm itself reaches the live stream at once. The whole organisation's
overview is computed once (one request at a time computes, the others wait for it) and each caller's
scope, region and group narrow it; each such answer is encoded once per computation.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api.context import ApiContext
from api.deps import CallerScope, Ctx, CurrentUser
from maintenance.overview import Colour, EstateState, Overview, OverviewFigures
from maintenance.scope import Scope
from pumpwatch.errors import StoreUnavailable

router = APIRouter(prefix="/api", tags=["overview"])
CACHE_SECONDS = 2.0
Place = Annotated[str | None, Query(min_length=1, max_length=64)]


class OverviewCache:
    """The latest overview of the whole organisation, recomputed when older than `max_age` seconds."""

    def __init__(self, figures: OverviewFigures, max_age: float = CACHE_SECONDS) -> None:
        self.figures = figures
        self.max_age = max_age
        self._current: Overview | None = None
        self._lock = asyncio.Lock()
        self._answers: dict[tuple[frozenset[str] | None, str | None, str | None], bytes] = {}
        self._estates: dict[str, str] = {}  # estate id -> its JSON in the current overview

    def _fresh(self, now: float) -> Overview | None:
        current = self._current
        return current if current is not None and 0 <= now - current.at < self.max_age else None

    async def get(self, ctx: ApiContext) -> Overview:
        """The overview, at most `max_age` seconds old by the context's clock."""
        found = self._fresh(ctx.clock.now())
        if found is not None:
            return found
        async with self._lock:  # one computation at a time; the callers who waited take its result
            now = ctx.clock.now()
            found = self._fresh(now)
            if found is not None:
                return found
            portfolio, catalog = ctx.portfolio, ctx.catalog
            keys = self.figures.watched_keys(portfolio, catalog)
            try:
                newest = await ctx.newest(keys)
            except StoreUnavailable:  # the tiles still show alarms and tasks; readings from the live cache
                newest = dict(ctx.latest.values) if ctx.latest is not None else {}
            overview = await asyncio.to_thread(self.figures.compute, portfolio, catalog, newest, now)
            self._current, self._answers, self._estates = overview, {}, {}
            return overview

    async def answer(self, ctx: ApiContext, scope: Scope, region: str | None, group: str | None) -> bytes:
        """`GET /api/overview`'s body for this scope and filters."""
        overview = await self.get(ctx)
        key = (scope.estates, region, group)
        body = self._answers.get(key) if overview is self._current else None
        if body is None:
            body = json.dumps(overview_json(overview, scope, region, group), ensure_ascii=False).encode()
            if overview is self._current:
                self._answers[key] = body
        return body

    def estate_json(self, overview: Overview, estate: EstateState) -> str:
        """One estate's JSON, encoded once per computation (the live stream compares them)."""
        if overview is not self._current:
            return json.dumps(estate.as_json(), ensure_ascii=False)
        found = self._estates.get(estate.id)
        if found is None:
            found = self._estates[estate.id] = json.dumps(estate.as_json(), ensure_ascii=False)
        return found


def overview_cache(request: Request) -> OverviewCache:
    """The app's overview cache (made on first use)."""
    cache: OverviewCache | None = getattr(request.app.state, "overview", None)
    if cache is None:
        ctx: ApiContext = request.app.state.ctx
        cache = request.app.state.overview = OverviewCache(OverviewFigures(ctx.tasks.sessions))
    return cache


def overview_json(overview: Overview, scope: Scope, region: str | None, group: str | None) -> dict[str, Any]:
    """The overview as one caller sees it: their estates, filtered, with totals and the filters' values."""
    mine = overview.narrow(scope)
    shown = [e for e in mine
             if (region is None or e.region == region) and (group is None or e.group == group)]
    totals = {colour.value: sum(1 for e in shown if e.counts.colour is colour) for colour in Colour}
    return {"at": overview.at, "max_age": CACHE_SECONDS, "count": len(shown), "totals": totals,
            "regions": sorted({e.region for e in mine if e.region is not None}),
            "groups": sorted({e.group for e in mine if e.group is not None}),
            "data": [e.as_json() for e in shown]}


@router.get("/overview", response_model=None)
async def overview(request: Request, ctx: Ctx, _user: CurrentUser, scope: CallerScope, region: Place = None,
                   group: Place = None) -> Response:
    """Every estate in the caller's scope (of `region`, of `group`), most urgent first, with its rooms.

    Each estate and room has its counts (open critical, major and minor alarms, offline edges and devices,
    overdue tasks), `attention` (what makes it red or amber) and `colour` (red: an open critical alarm;
    amber: a major alarm, something offline or an overdue task; else green). At most 2 s old (`at`).
    """
    body = await overview_cache(request).answer(ctx, scope, region, group)
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

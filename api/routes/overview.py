"""The monitoring centre's overview: the estates in the caller's scope, most urgent first (anyone signed in).

The figures and the colour rule are `maintenance.overview`'s. One computation serves every caller for
`CACHE_SECONDS` (2 s): fifty operator screens polling or streaming would otherwise each run the queries and
scan the newest readings of every device of 200 estates; two seconds is below what a person watching a
wall of tiles notices, and the alarm itself reaches the live stream at once. The whole organisation's
overview is computed once (one computation at a time) and each caller's scope, region and group narrow it;
each such answer is encoded once per computation.

Nobody waits for a recomputation while the last overview is younger than `STALE_SECONDS` (10 s): the
first request after it is 2 s old starts one in the background and every caller meanwhile gets the last
one (its `at` says how old). Only the first request, or one after a long quiet spell, waits; before this
every caller arriving during the computation (100-300 ms at 100 estates) waited for it, which was the
whole of the route's p99.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api.context import ApiContext
from api.deps import CallerScope, Ctx, CurrentUser
from maintenance.overview import Colour, EstateState, Overview, OverviewFigures
from maintenance.scope import Scope
from pumpwatch.errors import StoreUnavailable

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["overview"])
CACHE_SECONDS = 2.0
STALE_SECONDS = 10.0
Place = Annotated[str | None, Query(min_length=1, max_length=64)]


class OverviewCache:
    """The latest overview of the whole organisation, recomputed when older than `max_age` seconds.

    An overview older than `max_age` but younger than `max_stale` is still answered at once while its
    successor is computed in the background; an older one (or none) is waited for.
    """

    def __init__(self, figures: OverviewFigures, max_age: float = CACHE_SECONDS,
                 max_stale: float = STALE_SECONDS) -> None:
        self.figures = figures
        self.max_age = max_age
        self.max_stale = max_stale
        self._current: Overview | None = None
        self._computing: asyncio.Task[Overview] | None = None
        self._answers: dict[tuple[frozenset[str] | None, str | None, str | None], bytes] = {}
        self._estates: dict[str, str] = {}  # estate id -> its JSON in the current overview

    def _younger(self, now: float, limit: float) -> Overview | None:
        current = self._current
        return current if current is not None and 0 <= now - current.at < limit else None

    async def get(self, ctx: ApiContext) -> Overview:
        """The overview: at most `max_age` seconds old, or `max_stale` while a newer one is computed."""
        now = ctx.clock.now()
        found = self._younger(now, self.max_age)
        if found is not None:
            return found
        computing = self._computing
        if computing is None:  # one computation at a time; everyone takes its result
            computing = self._computing = asyncio.ensure_future(self._compute(ctx))
            computing.add_done_callback(self._computed)
        found = self._younger(now, self.max_stale)
        if found is not None:
            return found
        return await asyncio.shield(computing)  # a caller going away does not cancel it for the others

    async def refreshed(self) -> None:
        """Wait for the computation under way, if any."""
        if self._computing is not None:
            await asyncio.wait([self._computing])

    async def _compute(self, ctx: ApiContext) -> Overview:
        now = ctx.clock.now()
        portfolio, catalog = ctx.portfolio, ctx.catalog
        keys = self.figures.watched_keys(portfolio, catalog)
        try:
            newest = await ctx.newest(keys)
        except StoreUnavailable:  # the tiles still show alarms and tasks; readings from the live cache
            newest = dict(ctx.latest.values) if ctx.latest is not None else {}
        overview = await asyncio.to_thread(self.figures.compute, portfolio, catalog, newest, now)
        self._current, self._answers, self._estates = overview, {}, {}
        return overview

    def _computed(self, task: asyncio.Task[Overview]) -> None:
        self._computing = None
        if not task.cancelled() and task.exception() is not None:  # the waiting callers got it
            log.warning("computing the overview failed: %s", task.exception())

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
    amber: a major alarm, something offline or an overdue task; else green). `at` says when it was computed:
    usually at most 2 s ago, at most 10 s while a newer one is being computed.
    """
    body = await overview_cache(request).answer(ctx, scope, region, group)
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

"""The live stream (Server-Sent Events): what a screen subscribed to, as it happens.

A subscription is always inside the caller's scope (an estate or room outside it, or that does not exist,
is a 404 before the stream starts):

- no parameters: reading batches and alarm events of every estate in scope;
- `estate=E`: one estate's; `estate=E&room=R` (or `room=R` where the estate goes without saying): one
  room's readings and alarm events;
- `view=overview` (optionally `region`, `group`): no readings and no alarm events, only the overview's
  per-estate summaries (`event: overview`): every estate at first, then the estates whose counts or colour
  changed, looked at every `OVERVIEW_EVERY` seconds (the overview is itself usually at most 2 s old,
  `api/routes/overview.py`).

Each client has bounded queues on the live buses: a client that cannot keep up loses the oldest
events (counted in `pumpwatch_live_dropped_total`), never slows the collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from api.context import ApiContext
from api.deps import CallerScope, Ctx, CurrentUser
from api.routes.overview import OverviewCache, overview_cache
from api.routes.readings import reading_out
from maintenance.errors import InvalidInput, NotFound
from maintenance.scope import Scope
from pumpwatch.wire import alarm_event_json

router = APIRouter(prefix="/api", tags=["live"])
HEARTBEAT = 15.0
OVERVIEW_EVERY = 2.0  # seconds between two looks at the overview for changes to send
Place = Annotated[str | None, Query(min_length=1, max_length=64)]


@router.get("/live", response_class=StreamingResponse)
async def live(request: Request, ctx: Ctx, user: CurrentUser, scope: CallerScope, room: Place = None,
               estate: Place = None, view: Literal["overview"] | None = None, region: Place = None,
               group: Place = None) -> StreamingResponse:
    """`event: readings` (a list of readings) and `event: alarm` (an alarm event), as text/event-stream.

    Every estate's in the caller's scope, or one estate's (`estate`), or one room's (`room`: one estate's,
    so it needs the estate when the deployment has several and the scope more than one). `view=overview`
    sends `event: overview` instead: `{"at", "changed": [estate summaries, as in `GET /api/overview`],
    "removed": [estate ids]}`; the first carries every estate, most urgent first, and a screen keeps the
    order by the overview's rule (`maintenance.overview`: critical, major, offline, overdue, minor, id).
    """
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    if view == "overview":
        if estate is not None or room is not None:
            raise InvalidInput("the overview view takes region and group; estate and room are for readings")
        summaries = _overview_stream(request, ctx, scope, overview_cache(request), region, group)
        return StreamingResponse(summaries, media_type="text/event-stream", headers=headers)
    wanted = ctx.estate(estate) if estate is not None or room is not None else None
    if wanted is not None and room is not None and all(r.id != room for r in ctx.estate_site(wanted).rooms):
        raise NotFound("room", room)
    sensors = _Sensors(ctx, scope, wanted, room)
    # Room by room the collector's batches come in bursts of one per room of the deployment; the queue
    # holds two bursts, so a room's own batch is not dropped behind those of 400 rooms it does not want.
    rooms = sum(len(site.rooms) for site in ctx.portfolio)
    readings = ctx.readings.subscribe(f"live:{user.username}", maxsize=max(200, 2 * rooms))
    alarms = ctx.alarm_events.subscribe(f"live-alarms:{user.username}", maxsize=500)

    async def stream() -> AsyncIterator[str]:
        yield "retry: 3000\n\n"
        get_readings = asyncio.ensure_future(readings.get())
        get_alarm = asyncio.ensure_future(alarms.get())
        stopping = asyncio.ensure_future(ctx.shutdown.wait())
        try:
            while not await request.is_disconnected():
                done, _ = await asyncio.wait({get_readings, get_alarm, stopping}, timeout=HEARTBEAT,
                                             return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    return
                if not done:
                    yield ": keep-alive\n\n"
                    continue
                if get_alarm in done:
                    event = get_alarm.result()
                    get_alarm = asyncio.ensure_future(alarms.get())
                    if scope.covers(event.key.estate) and _here(event.key.estate, event.room, wanted, room):
                        data = json.dumps(alarm_event_json(event), ensure_ascii=False)
                        yield f"event: alarm\ndata: {data}\n\n"
                if get_readings in done:
                    batch = get_readings.result()
                    get_readings = asyncio.ensure_future(readings.get())
                    now, keys = ctx.clock.now(), sensors.keys()
                    out = [reading_out(ctx, r, now).model_dump() for r in batch
                           if (r.sensor in keys if keys is not None else r.sensor in ctx.catalog)]
                    if out:
                        yield f"event: readings\ndata: {json.dumps(out, ensure_ascii=False)}\n\n"
        finally:
            for pending in (get_readings, get_alarm, stopping):
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
            readings.close()
            alarms.close()

    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


async def _overview_stream(request: Request, ctx: ApiContext, scope: Scope, cache: OverviewCache,
                           region: str | None, group: str | None) -> AsyncIterator[str]:
    """The overview's summaries: all at first, then those that changed (see the module)."""
    yield "retry: 3000\n\n"
    sent: dict[str, str] | None = None  # estate id -> the summary last sent; None before the first event
    quiet = 0.0
    stopping = asyncio.ensure_future(ctx.shutdown.wait())
    try:
        while not await request.is_disconnected():
            overview = await cache.get(ctx)
            shown = overview.narrow(scope, region, group)
            now = {e.id: cache.estate_json(overview, e) for e in shown}
            changed = [text for estate, text in now.items() if sent is None or sent.get(estate) != text]
            removed = sorted(set(sent or ()) - set(now))
            if sent is None or changed or removed:
                # Put together from the summaries encoded once per computation for every client.
                yield (f'event: overview\ndata: {{"at":{json.dumps(overview.at)},'
                       f'"changed":[{",".join(changed)}],"removed":{json.dumps(removed)}}}\n\n')
                sent, quiet = now, 0.0
            elif quiet >= HEARTBEAT:
                yield ": keep-alive\n\n"
                quiet = 0.0
            done, _ = await asyncio.wait({stopping}, timeout=OVERVIEW_EVERY)
            if stopping in done:
                return
            quiet += OVERVIEW_EVERY
    finally:
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping


class _Sensors:
    """The sensor keys a subscription wants, worked out again when the estates change (a reload)."""

    def __init__(self, ctx: ApiContext, scope: Scope, estate: str | None, room: str | None) -> None:
        self.ctx, self.scope, self.estate, self.room = ctx, scope, estate, room
        self._portfolio: object = None
        self._keys: frozenset[str] | None = None

    def keys(self) -> frozenset[str] | None:
        """The keys of the sensors wanted; None for every sensor of the deployment."""
        if self.scope.whole and self.estate is None:
            return None
        portfolio = self.ctx.portfolio
        if portfolio is not self._portfolio:
            self._portfolio = portfolio
            self._keys = frozenset(info.key for info in self.ctx.catalog if self.scope.covers(info.estate)
                                   and _here(info.estate, info.room, self.estate, self.room))
        return self._keys


def _here(estate: str, room: str, wanted_estate: str | None, wanted_room: str | None) -> bool:
    """Whether something of `estate`'s `room` is what the stream asked for."""
    return (wanted_estate is None or estate == wanted_estate) and (wanted_room is None or room == wanted_room)

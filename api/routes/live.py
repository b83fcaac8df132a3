"""The live stream (Server-Sent Events): reading batches and alarm events as they happen.

Each client has bounded queues on the live buses: a client that cannot keep up loses the oldest
events (counted in `pumpwatch_live_dropped_total`), never slows the collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from api.deps import CallerScope, Ctx, CurrentUser
from api.routes.readings import reading_out
from pumpwatch.wire import alarm_event_json

router = APIRouter(prefix="/api", tags=["live"])
HEARTBEAT = 15.0


@router.get("/live", response_class=StreamingResponse)
async def live(request: Request, ctx: Ctx, user: CurrentUser, scope: CallerScope, room: str | None = None,
               estate: str | None = None) -> StreamingResponse:
    """`event: readings` (a list of readings) and `event: alarm` (an alarm event), as text/event-stream.

    Every estate's in the caller's scope, or one estate's (`estate`; a `room` is one estate's, so it needs
    the estate when the deployment has several and the scope more than one).
    """
    wanted = ctx.estate(estate) if estate is not None or room is not None else None
    readings = ctx.readings.subscribe(f"live:{user.username}", maxsize=200)
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
                    now = ctx.clock.now()
                    out = [reading_out(ctx, r, now).model_dump() for r in batch
                           if (info := ctx.catalog.get(r.sensor)) is not None
                           and scope.covers(info.estate) and _here(info.estate, info.room, wanted, room)]
                    if out:
                        yield f"event: readings\ndata: {json.dumps(out, ensure_ascii=False)}\n\n"
        finally:
            for pending in (get_readings, get_alarm, stopping):
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
            readings.close()
            alarms.close()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _here(estate: str, room: str, wanted_estate: str | None, wanted_room: str | None) -> bool:
    """Whether something of `estate`'s `room` is what the stream asked for."""
    return (wanted_estate is None or estate == wanted_estate) and (wanted_room is None or room == wanted_room)

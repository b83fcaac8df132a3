"""Live stream bytes per client: a room's, an estate's and the overview's subscription.

    python -m bench.live_bytes [--estates 200] [--seconds 20] [--alarm-every 5] [--name NAME]

One API server (uvicorn, in this process, SQLite state) over `--estates` copies of `examples/site.yaml`
(2 rooms, 2 PLCs and 9 wireless sensors each: 50 sensors). Every second each room's sensors publish one
reading each on the live bus, one batch per room, as the collector's live publisher sends them; every
`--alarm-every` seconds a major alarm is raised in one estate (and the previous one cleared). Three clients
stream `/api/live?estate=E&room=dom`, `/api/live?estate=E` and `/api/live?view=overview` as a whole
organisation's operator and count the bytes they receive. Reported: bytes per second per client over the
run after the first event, and the first event's size (the overview's first message carries every estate).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from api.app import create_app
from api.context import ApiContext
from api.latest_cache import LatestCache
from bench.common import machine, print_table, write_results
from collector.stores.embedded import EmbeddedStore
from maintenance.alarms import AlarmService
from maintenance.auth import AuthService
from maintenance.db import make_engine, session_factory, upgrade
from maintenance.tasks import TaskService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import SystemClock
from pumpwatch.portfolio import Portfolio
from pumpwatch.readings import Reading
from pumpwatch.site import Severity, Site, Text
from pumpwatch.sitefile import load_site

EXAMPLE = Path(__file__).parents[1] / "examples" / "site.yaml"


def fleet(count: int) -> Portfolio:
    """`count` estates, copies of the example site with their own ids, regions and groups."""
    site = load_site(EXAMPLE)
    copies: list[Site] = []
    for n in range(count):
        info = site.site.model_copy(update={"id": f"estate-{n:03d}",
                                            "name": Text(zh=f"小区 {n:03d}", en=f"Estate {n:03d}"),
                                            "region": f"region-{n % 8}", "group": f"team-{n % 5}"})
        copies.append(site.model_copy(update={"site": info}))
    return Portfolio.of(*copies)


async def count_bytes(http: httpx.AsyncClient, path: str, headers: dict[str, str], stop: asyncio.Event,
                      out: dict[str, Any]) -> None:
    """Stream `path` until `stop`, counting bytes (the first event apart)."""
    out.update(first=0, bytes=0, since=None)
    head = b""
    async with http.stream("GET", path, headers=headers) as stream:
        reading = stream.aiter_raw()
        while not stop.is_set():
            task = asyncio.ensure_future(anext(reading))
            stopping = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if task not in done:
                task.cancel()
                break
            stopping.cancel()
            chunk = task.result()
            if out["since"] is not None:
                out["bytes"] += len(chunk)
                continue
            head += chunk  # until the first event has come whole
            start = head.find(b"data:")
            end = head.find(b"\n\n", start) if start >= 0 else -1
            if end >= 0:
                out.update(first=end + 2 - start, bytes=len(head) - end - 2, since=time.monotonic())
    out["until"] = time.monotonic()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the server, the publishers and the three clients; the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/state.db")
        upgrade(engine)
        sessions = session_factory(engine)
        clock = SystemClock()
        portfolio = fleet(args.estates)
        catalog = SensorCatalog(portfolio)
        store = EmbeddedStore(Path(tmp) / "series.db", catalog)
        await store.start()
        auth = AuthService(sessions, clock)
        tasks = TaskService(sessions, clock)
        alarms = AlarmService(sessions, clock, tasks)
        latest = LatestCache(store)
        ctx = ApiContext(site=portfolio.first, catalog=catalog, store=store, readings=LiveBus(),
                         alarm_events=LiveBus(), auth=auth, tasks=tasks, alarms=alarms, clock=clock,
                         attachments_dir=Path(tmp) / "files", latest=latest)
        operator = auth.create_user("operator", "bench password 1", roles=["operator"])
        headers = {"Authorization": f"Bearer {auth.issue_token(operator).token}"}
        server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=0, log_level="warning",
                                               lifespan="off"))
        listening = socket.create_server(("127.0.0.1", 0))  # connections wait in its backlog until served
        port = listening.getsockname()[1]
        serving = asyncio.create_task(server.serve(sockets=[listening]))
        following = asyncio.create_task(latest.run(ctx.readings))
        rooms: dict[tuple[str, str], list[str]] = {}
        for info in catalog:
            rooms.setdefault((info.estate, info.room), []).append(info.key)
        rng = random.Random(15)
        # One round of readings before the clients come: the overview starts from devices online.
        latest.update([Reading(key, clock.now(), 0.4) for keys in rooms.values() for key in keys])
        estate = portfolio.first.site.id
        paths = {"room": f"/api/live?estate={estate}&room=dom", "estate": f"/api/live?estate={estate}",
                 "overview": "/api/live?view=overview"}
        stop = asyncio.Event()
        figures: dict[str, dict[str, Any]] = {name: {} for name in paths}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=None) as http:
            clients = [asyncio.create_task(count_bytes(http, path, headers, stop, figures[name]))
                       for name, path in paths.items()]
            raised: AlarmKey | None = None
            started = time.monotonic()
            second = 0
            while time.monotonic() - started < args.seconds:
                now = clock.now()
                for keys in rooms.values():
                    ctx.readings.publish([Reading(key, now, round(rng.uniform(0.2, 0.6), 3)) for key in keys])
                if second % args.alarm_every == 0:
                    if raised is not None:
                        event = AlarmEvent(AlarmAction.CLEARED, raised, Severity.MAJOR, now, "dom",
                                           Text(zh="干转", en="dry run"))
                        alarms.apply(event)
                        ctx.alarm_events.publish(event)
                    raised = AlarmKey("dom-p1", "dry_run", rng.choice(list(portfolio.estates)))
                    event = AlarmEvent(AlarmAction.RAISED, raised, Severity.MAJOR, now, "dom",
                                       Text(zh="干转", en="dry run"))
                    alarms.apply(event)
                    ctx.alarm_events.publish(event)
                second += 1
                await asyncio.sleep(max(0.0, started + second - time.monotonic()))
            stop.set()
            await asyncio.gather(*clients)
        server.should_exit = True
        ctx.shutdown.set()
        await serving
        following.cancel()
        await store.close()
        engine.dispose()
    for values in figures.values():
        span = (values.get("until") or 0) - (values.get("since") or 0)
        values["bytes_per_second"] = round(values["bytes"] / span) if span > 0 else None
    return {"estates": args.estates, "seconds": args.seconds, "alarm_every": args.alarm_every,
            "sensors_per_estate": len(rooms) and sum(len(k) for k in rooms.values()) // args.estates,
            "clients": figures, "machine": machine()}


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estates", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--alarm-every", type=int, default=5)
    parser.add_argument("--name", default="live_bytes")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print_table(f"Live stream per client: {args.estates} estates, {result['sensors_per_estate']} sensors "
                f"each, 1 Hz, a major alarm every {args.alarm_every} s",
                ["subscription", "first event (bytes)", "then bytes/s"],
                [[name, c["first"], c["bytes_per_second"]] for name, c in result["clients"].items()])
    print(f"\nresults: {write_results(args.name, result)}")


if __name__ == "__main__":
    main()

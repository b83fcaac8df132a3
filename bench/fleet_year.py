"""The inspection scheduler's year for a fleet: every tick of a simulated year, on PostgreSQL.

The scheduler as `pumpwatch schedule` runs it (`InspectionScheduler`, one for every estate of the
deployment, leader lock, the regulation's plans of each site), driven the way its own clock timer drives
it (`InspectionScheduler.run`: tick, then sleep `sleep_seconds()`), on a `FakeClock` that jumps each
sleep at once: a year of wake-ups in minutes. Each tick catches up (creates the tasks of the occurrences
that opened), creates run-hour tasks and starts duty rotations. No readings reach it (there is no
collector in this run), so automatic rotations are commanded to a stand-in that accepts and are then
never verified; `failure_tasks=False` keeps those unverifiable rotations from becoming fault tasks, which
a real fleet with readings would not have.

It runs in a spawned process of its own, so the process's peak memory is the scheduler's.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import resource
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.common import process_cpu

YEAR_START = 1_798_761_600.0  # 2027-01-01T00:00:00Z


def year_main(conn: Connection, deployment: str, dsn: str, days: float, tick: float) -> None:
    """Run the scheduler over `days` from YEAR_START; send a result dict through `conn`."""
    try:
        conn.send(asyncio.run(_year(Path(deployment), dsn, days, tick)))
    except Exception as err:  # reported to the parent, which prints it
        conn.send({"error": f"{type(err).__name__}: {err}"})


async def _accept(_sensor: str, _value: float) -> None:
    """A duty-select command that always succeeds (there is no PLC in this run)."""


async def _year(deployment: Path, dsn: str, days: float, tick: float) -> dict[str, Any]:
    from sqlalchemy import func, select

    from inspection.scheduler import InspectionScheduler
    from maintenance.db import make_engine, session_factory, upgrade
    from maintenance.models import Task
    from maintenance.tasks import TaskService
    from pumpwatch.clock import FakeClock
    from pumpwatch.portfolio import load_portfolio

    engine = make_engine(dsn)
    upgrade(engine)
    sessions = session_factory(engine)
    clock = FakeClock(YEAR_START)
    portfolio = load_portfolio(deployment)
    tasks = TaskService(sessions, clock)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu0 = process_cpu()
    started = time.monotonic()
    scheduler = InspectionScheduler(portfolio, sessions, tasks, clock, commands=lambda _estate: _accept,
                                    tick=tick, offload=False, failure_tasks=False, engine=engine)
    end = YEAR_START + days * 86_400
    ticks = created = late = 0
    while clock.now() < end:
        made = await scheduler.tick()
        ticks += 1
        created += len(made)
        late += sum(1 for m in made if m.late)
        await clock.advance(min(scheduler.sleep_seconds(), max(0.001, end - clock.now())))
    wall = time.monotonic() - started
    cpu = process_cpu() - cpu0
    scheduler.close()
    with sessions() as session:
        kinds = Counter({str(kind): int(n) for kind, n in
                         session.execute(select(Task.kind, func.count()).group_by(Task.kind))})
        rooms = sum(len(site.rooms) for site in portfolio)
    engine.dispose()
    return {"estates": len(portfolio), "rooms": rooms, "days": days, "tick_s": tick, "ticks": ticks,
            "tasks_created": created, "late": late, "tasks_by_kind": dict(kinds.most_common()),
            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_before_mb": round(rss_before, 1)}


def run_year(deployment: Path, dsn: str, days: float, tick: float, timeout: float) -> dict[str, Any]:
    """Run `year_main` in a spawned process and return its result."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=year_main, args=(child, str(deployment), dsn, days, tick),
                       name="bench-fleet-year", daemon=True)
    proc.start()
    try:
        if not parent.poll(timeout):
            raise RuntimeError(f"the scheduler's year did not finish within {timeout:.0f} s")
        result: dict[str, Any] = parent.recv()
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    return result

"""Small site files for the inspection tests, built as data and validated like a real file."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from maintenance.models import Task
from pumpwatch.clock import FakeClock
from pumpwatch.site import Site
from pumpwatch.sitefile import parse_site

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def local_epoch(zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    """Epoch seconds of a local wall-clock time."""
    return datetime(year, month, day, hour, minute, tzinfo=zone).timestamp()


def site_with(pumps: int = 2, duty_select: bool = True, timezone: str = "Asia/Shanghai",
              plans: dict[str, Any] | None = None) -> Site:
    """One domestic room with a duty group of `pumps` pumps (current, run, hours each), a header pressure,
    optionally a writable duty_select point; plus a fire room with a fire and a sprinkler pump."""
    ids = [f"p{i}" for i in range(1, pumps + 1)]
    equipment: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []

    def sensor(sid: str, kind: str) -> dict[str, Any]:
        points.append({"sensor": sid, "table": "input", "address": len(points)})
        return {"id": sid, "kind": kind, "source": "modbus"}

    for pid in ids:
        equipment.append({"id": pid, "type": "pump", "kind": "domestic", "rated_current": 10.0,
                          "duty_group": "grp", "name": {"zh": f"{pid}号泵", "en": f"Pump {pid}"},
                          "sensors": [sensor(f"{pid}-current", "current"), sensor(f"{pid}-run", "run_status"),
                                      sensor(f"{pid}-hours", "run_hours")]})
    equipment.append({"id": "header", "type": "header", "sensors": [sensor("header-pressure", "pressure")]})
    cabinet: dict[str, Any] = {"id": "cab", "type": "cabinet", "sensors": [sensor("cab-voltage", "voltage")]}
    if duty_select:
        cabinet["sensors"].append({"id": "duty-select", "kind": "duty_select", "source": "modbus"})
        points.append({"sensor": "duty-select", "table": "holding", "address": 0, "writable": True})
    equipment.append(cabinet)
    fire = [{"id": "fp", "type": "pump", "kind": "fire", "rated_current": 50.0,
             "sensors": [sensor("fp-current", "current")]},
            {"id": "jp", "type": "pump", "kind": "sprinkler", "rated_current": 8.0,
             "sensors": [sensor("jp-current", "current")]}]
    data: dict[str, Any] = {
        "site": {"id": "t", "name": {"zh": "测试", "en": "Test"}, "timezone": timezone},
        "rooms": [{"id": "dom", "name": {"zh": "生活泵房", "en": "Domestic room"}, "equipment": equipment,
                   "duty_groups": [{"id": "grp", "pumps": ids,
                                    "control": {"start_pressure": 0.30, "stop_pressure": 0.45}}]},
                  {"id": "fire", "name": {"zh": "消防泵房", "en": "Fire room"}, "equipment": fire}],
        "modbus": [{"id": "plc", "port": 5020, "points": points}],
    }
    if plans is not None:
        data["plans"] = plans
    return parse_site(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "test-site.yaml")


def own_key(task: Task) -> str:
    """A task's plan key within its estate: `<plan>:<occurrence>` of `<estate>:<plan>:<occurrence>`."""
    if task.plan_key is None or not task.estate:
        return task.plan_key or ""
    return task.plan_key.removeprefix(f"{task.estate}:")


def plan_tasks(sessions: sessionmaker[Session], prefix: str = "", estate: str | None = None) -> list[Task]:
    """Tasks whose plan key within their estate starts with `prefix` (of `estate`, or any), oldest first."""
    with sessions() as session:
        query = select(Task).where(Task.plan_key.is_not(None)).order_by(Task.created_at, Task.id)
        if estate is not None:
            query = query.where(Task.estate == estate)
        return [t for t in session.scalars(query) if own_key(t).startswith(prefix)]


async def advance_days(clock: FakeClock, days: float, step: float = 86_400.0) -> None:
    """Move the fake clock forward in steps, letting the scheduler's timer run at each wake-up."""
    left = days * 86_400.0
    await asyncio.sleep(0)  # a timer task created just before gets to run (and sleep) first
    while left > 0:
        chunk = min(step, left)
        await clock.advance(chunk)
        left -= chunk
        await asyncio.sleep(0)


def utc(epoch: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(epoch, UTC)

"""The demo as a user runs it: a fault scenario raises an alarm and exactly one task, through the API.

`pumpwatch demo` runs as its own process against real Mosquitto and InfluxDB; the test talks to it
over HTTP (bearer tokens, the live SSE stream) and switches scenarios over MQTT like an operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.publish as publish
import pytest

from tests.support.processes import running_demo
from tests.support.services import InfluxDB, Mosquitto

# `pumpwatch demo` as its own process, a fault followed through the HTTP API.
pytestmark = pytest.mark.e2e

CONTROL = "pumpwatch/sim/control"


@contextlib.contextmanager
def demo_process(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB) -> Iterator[tuple[str, Path]]:
    with running_demo(tmp_path, mosquitto.url, influxdb.url) as (url, demo):
        yield url, demo.log


async def login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    resp = await client.post("/api/auth/token", data={"username": username,
                                                       "password": f"{username}-demo-2026"})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


@contextlib.asynccontextmanager
async def live_events(client: httpx.AsyncClient,
                      headers: dict[str, str]) -> AsyncIterator[list[dict[str, Any]]]:
    """Collect `alarm` events from the SSE stream in the background."""
    events: list[dict[str, Any]] = []

    async def read() -> None:
        async with client.stream("GET", "/api/live", headers=headers, timeout=None) as resp:
            assert resp.status_code == 200
            kind = None
            async for line in resp.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "alarm":
                    events.append(json.loads(line[6:]))

    task = asyncio.create_task(read())
    try:
        yield events
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(check: Any, within: float) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, f"not reached in {within} s (last: {result!r})"
        await asyncio.sleep(0.25)


def scenario(mosquitto: Mosquitto, name: str, on: bool) -> None:
    publish.single(CONTROL, json.dumps({"scenario": name, "on": on}), qos=1, hostname="127.0.0.1",
                   port=mosquitto.port)


@pytest.mark.timeout(240)
async def test_flange_leak_raises_one_alarm_and_one_task_and_follows_the_lifecycle(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB) -> None:
    with demo_process(tmp_path, mosquitto, influxdb) as (url, log):
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            operator = await login(client, "operator")
            supervisor = await login(client, "supervisor")

            async def flange_alarms() -> list[dict[str, Any]]:
                resp = await client.get("/api/alarms", params={"asset": "dom-ptank"}, headers=operator)
                return [a for a in resp.json()["data"] if a["alarm_type"] == "leak"]

            async def tasks_for_ptank() -> list[dict[str, Any]]:
                resp = await client.get("/api/tasks", params={"asset": "dom-ptank"}, headers=operator)
                return list(resp.json()["data"])

            async with live_events(client, operator) as events:
                await asyncio.sleep(1)  # the stream is open
                started = time.monotonic()
                scenario(mosquitto, "flange_leak", True)
                raised = await until(lambda: _raised(events, "dom-ptank", "leak"), 20)
                latency = time.monotonic() - started
                [alarm] = await until(flange_alarms, 10)
                [task] = await until(tasks_for_ptank, 10)
            assert raised["severity"] == "critical"
            assert alarm["state"] == "active"
            assert task["alarm_id"] == alarm["id"]
            assert task["priority"] == "critical"
            assert latency < 20

            # The leak stays on for a while: no second alarm, no second task.
            await asyncio.sleep(5)
            assert len(await flange_alarms()) == 1
            assert len(await tasks_for_ptank()) == 1

            resp = await client.post(f"/api/alarms/{alarm['id']}/ack", headers=operator)
            assert resp.status_code == 200, resp.text
            assert resp.json()["acknowledged_by"] is not None

            scenario(mosquitto, "flange_leak", False)  # repaired: the sensor dries, the alarm clears

            async def cleared() -> bool:
                return bool((await flange_alarms())[0]["state"] == "cleared")

            await until(cleared, 30)

            # Raised again soon after: the same task is reopened and counts a repeat fault.
            scenario(mosquitto, "flange_leak", True)

            async def repeated() -> list[dict[str, Any]]:
                alarms = await flange_alarms()
                return [a for a in alarms if a["state"] == "active"]

            await until(repeated, 20)
            tasks = await tasks_for_ptank()
            assert len(tasks) == 1
            assert tasks[0]["repeat_count"] == 1

            # Roles: an operator cannot cancel a task; a supervisor can, with a reason.
            resp = await client.post(f"/api/tasks/{task['id']}/cancel", json={"reason": "test"},
                                     headers=operator)
            assert resp.status_code == 403
            assert resp.headers["content-type"].startswith("application/problem+json")
            resp = await client.post(f"/api/tasks/{task['id']}/cancel", json={"reason": "duplicate report"},
                                     headers=supervisor)
            assert resp.status_code == 200, resp.text
            resp = await client.post(f"/api/tasks/{task['id']}/start", headers=await login(client, "tech"))
            assert resp.status_code == 409
            assert resp.json()["current"] == "cancelled"
        assert "Traceback" not in log.read_text()


def _raised(events: list[dict[str, Any]], asset: str, alarm_type: str) -> dict[str, Any] | None:
    return next((e for e in events if e["asset"] == asset and e["alarm_type"] == alarm_type
                 and e["action"] == "raised"), None)

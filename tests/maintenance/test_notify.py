"""Notifications to a group robot: what is told (and only once), retries, and the bounded queue."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from maintenance.alarms import AlarmService
from maintenance.notify import Notice, Notifier
from maintenance.tasks import TaskService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.clock import FakeClock
from pumpwatch.settings import NotifySettings
from pumpwatch.site import Severity, Text
from tests.api.conftest import advance

MESSAGE = Text(zh="一号生活泵干转", en="Domestic pump 1 running dry")


class Robot:
    """A group robot on loopback: records what it is sent, answers from a script (then 200 ok)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.replies: list[tuple[int, dict[str, Any]]] = []
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                robot.received.append(json.loads(body))
                status, answer = robot.replies.pop(0) if robot.replies else (200, {"errcode": 0})
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cgi-bin/webhook/send?key=secret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def robot() -> Iterator[Robot]:
    robot = Robot()
    yield robot
    robot.server.shutdown()


def notifier(url: str, **settings: Any) -> Notifier:
    return Notifier(NotifySettings(webhook_url=SecretStr(url), **settings), CollectorRegistry(),
                    "Asia/Shanghai", "示范小区")


def event(clock: FakeClock, action: AlarmAction, severity: Severity) -> AlarmEvent:
    return AlarmEvent(action, AlarmKey("dom-p1", "dry_run"), severity, clock.now(), "dom", MESSAGE, 0.05,
                      "dom-header-pressure")


async def deliver(n: Notifier, robot: Robot, expected: int) -> None:
    runner = asyncio.create_task(n.run())
    try:
        for _ in range(500):
            if len(robot.received) >= expected and not n.queue:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # nothing more arrives
    finally:
        runner.cancel()


def count(n: Notifier, outcome: str) -> float:
    value: float = n.told.labels(outcome=outcome)._value.get()
    return value


def test_alarms_are_told_once_when_raised_or_escalated_at_the_threshold(
        robot: Robot, alarms: AlarmService, clock: FakeClock) -> None:
    n = notifier(robot.url, min_severity="major")
    for action, severity in [(AlarmAction.RAISED, Severity.MINOR),  # under the threshold: quiet
                             (AlarmAction.ESCALATED, Severity.CRITICAL),  # told
                             (AlarmAction.RAISED, Severity.CRITICAL),  # a duplicate: quiet
                             (AlarmAction.PEAK, Severity.CRITICAL),  # quiet
                             (AlarmAction.CLEARED, Severity.CRITICAL)]:  # quiet
        advance(clock, 5)
        alarm, change = alarms.apply_change(event(clock, action, severity))
        n.alarm_changed(change, alarm)
    asyncio.run(deliver(n, robot, 1))
    assert len(robot.received) == 1
    sent = robot.received[0]
    assert sent["msgtype"] == "text"
    content = sent["text"]["content"]
    assert content.startswith("【示范小区】紧急告警升级 / critical alarm escalated")
    assert "一号生活泵干转 / Domestic pump 1 running dry" in content
    assert "设备 asset: dom-p1" in content
    assert count(n, "sent") == 1


def test_an_alarm_applied_twice_reports_raised_only_once(alarms: AlarmService, clock: FakeClock) -> None:
    first = alarms.apply_change(event(clock, AlarmAction.RAISED, Severity.MAJOR))
    second = alarms.apply_change(event(clock, AlarmAction.RAISED, Severity.MAJOR))  # another replica
    assert (first[1], second[1]) == ("raised", "updated")
    assert first[0] is not None
    assert second[0] is not None
    assert first[0].id == second[0].id


def test_task_escalations_are_told_in_the_json_style(
        robot: Robot, alarms: AlarmService, tasks: TaskService, clock: FakeClock) -> None:
    alarms.apply(event(clock, AlarmAction.RAISED, Severity.CRITICAL))  # a critical task, due in 30 min
    advance(clock, timedelta(hours=3).total_seconds())
    n = notifier(robot.url, style="json")
    steps = tasks.escalate()
    assert steps
    for step in steps:
        n.escalated(step)
    asyncio.run(deliver(n, robot, len(steps)))
    assert [m["kind"] for m in robot.received] == ["escalation"] * len(steps)
    assert robot.received[-1]["notify"] == "director"
    assert robot.received[-1]["title"]["en"]


async def test_a_refusing_robot_is_retried_and_then_counted_failed(robot: Robot,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("maintenance.notify.FIRST_PAUSE", 0.01)
    n = notifier(robot.url)
    robot.replies = [(500, {}), (200, {"errcode": 93000, "errmsg": "invalid webhook url"})]  # then ok
    notice = _notice(n)
    n._put(notice)
    await deliver(n, robot, 3)
    assert len(robot.received) == 3
    assert robot.received[0] == robot.received[2] == {"msgtype": "text", "text": {"content": notice.text}}
    assert (count(n, "sent"), count(n, "failed")) == (1, 0)

    robot.replies = [(503, {})] * 3
    n._put(_notice(n))
    await deliver(n, robot, 6)
    assert (count(n, "sent"), count(n, "failed")) == (1, 1)


def test_the_queue_is_bounded_and_drops_the_oldest() -> None:
    n = notifier("http://127.0.0.1:9/never", queue_limit=2)
    for i in range(3):
        n._put(_notice(n, str(i)))
    assert [x.text for x in n.queue] == ["1", "2"]
    assert count(n, "dropped") == 1


def _notice(_n: Notifier, text: str = "测试 / test") -> Notice:
    return Notice(text, {"kind": "test"})

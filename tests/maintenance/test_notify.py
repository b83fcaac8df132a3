"""Notifications: what is told (and only once), per-channel thresholds, retries, the bounded queues, and
channels that never hold each other up; real HTTP robots and a real SMTP server on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from maintenance.alarms import AlarmService
from maintenance.notify import Notice, Notifier
from maintenance.tasks import TaskService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.backoff import Backoff
from pumpwatch.clock import FakeClock
from pumpwatch.settings import EmailChannelSettings, JsonWebhookSettings, NotifySettings, RobotChannelSettings
from pumpwatch.site import Severity, Text
from tests.support.smtp import HOST, SmtpServer
from tests.support.state import advance

HV = "harbour-view"  # the estate of examples/site.yaml

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

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}/cgi-bin/webhook/send?key=secret-key"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> Robot:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def robot() -> Iterator[Robot]:
    with Robot() as robot:
        yield robot


def fast_pauses() -> Backoff:
    return Backoff(first=0.01, cap=0.04, jitter=0.0)


def notifier(settings: NotifySettings) -> Notifier:
    return Notifier(settings, CollectorRegistry(), "Asia/Shanghai", "示范小区", pauses=fast_pauses)


def robot_notifier(url: str, **settings: Any) -> Notifier:
    """The shorthand deployments use: PUMPWATCH_NOTIFY__WEBHOOK_URL (+ STYLE)."""
    return notifier(NotifySettings(webhook_url=SecretStr(url), **settings))


def event(clock: FakeClock, action: AlarmAction, severity: Severity) -> AlarmEvent:
    return AlarmEvent(action, AlarmKey("dom-p1", "dry_run", HV), severity, clock.now(), "dom", MESSAGE, 0.05,
                      "dom-header-pressure")


def notice(text: str = "【示范小区】测试 / test\n正文 body", severity: Severity | None = None) -> Notice:
    return Notice(text, {"kind": "test", "text": text}, severity)


def count(n: Notifier, channel: str, outcome: str) -> float:
    """pumpwatch_notifications_total{channel, outcome}, as /metrics shows it."""
    return next(sample.value for metric in n.told.collect() for sample in metric.samples
                if sample.name == "pumpwatch_notifications_total"
                and sample.labels == {"channel": channel, "outcome": outcome})


def settled(n: Notifier) -> float:
    return sum(count(n, channel, outcome) for channel in n.outboxes for outcome in ("sent", "failed"))


async def until(done: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not done():
            await asyncio.sleep(0.01)


async def deliver(n: Notifier, outcomes: int) -> None:
    """Run the notifier until `outcomes` deliveries were sent or given up, over all channels."""
    runner = asyncio.create_task(n.run())
    try:
        await until(lambda: settled(n) >= outcomes)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert settled(n) == outcomes
    assert n.pending == 0


def queued(n: Notifier, channel: str) -> list[str]:
    return [x.text for x in n.outboxes[channel].queue]


def test_alarms_are_told_once_when_raised_or_escalated_at_the_threshold(
        robot: Robot, alarms: AlarmService, clock: FakeClock) -> None:
    n = robot_notifier(robot.url, min_severity="major")
    for action, severity in [(AlarmAction.RAISED, Severity.MINOR),  # under the threshold: quiet
                             (AlarmAction.ESCALATED, Severity.CRITICAL),  # told
                             (AlarmAction.RAISED, Severity.CRITICAL),  # a duplicate: quiet
                             (AlarmAction.PEAK, Severity.CRITICAL),  # quiet
                             (AlarmAction.CLEARED, Severity.CRITICAL)]:  # quiet
        advance(clock, 5)
        alarm, change = alarms.apply_change(event(clock, action, severity))
        n.alarm_changed(change, alarm)
    assert len(queued(n, "robot")) == 1
    asyncio.run(deliver(n, 1))
    assert len(robot.received) == 1
    sent = robot.received[0]
    assert sent["msgtype"] == "text"
    content = sent["text"]["content"]
    assert content.startswith("【示范小区】紧急告警升级 / critical alarm escalated")
    assert "一号生活泵干转 / Domestic pump 1 running dry" in content
    assert "设备 asset: dom-p1" in content
    assert count(n, "robot", "sent") == 1


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
    n = robot_notifier(robot.url, style="json")
    steps = tasks.escalate()
    assert steps
    for step in steps:
        n.escalated(step)
    asyncio.run(deliver(n, len(steps)))
    assert [m["kind"] for m in robot.received] == ["escalation"] * len(steps)
    assert robot.received[-1]["notify"] == "director"
    assert robot.received[-1]["title"]["en"]
    assert count(n, "json", "sent") == len(steps)


async def test_a_refusing_robot_is_retried_and_then_counted_failed_and_its_key_never_logged(
        robot: Robot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    n = robot_notifier(robot.url)
    robot.replies = [(500, {}), (200, {"errcode": 93000, "errmsg": "invalid webhook url"})]  # then ok
    first = notice()
    n.tell(first)
    await deliver(n, 1)
    assert len(robot.received) == 3
    assert robot.received[0] == robot.received[2] == {"msgtype": "text", "text": {"content": first.text}}
    assert (count(n, "robot", "sent"), count(n, "robot", "failed")) == (1, 0)

    robot.replies = [(503, {})] * 3
    n.tell(notice())
    await deliver(n, 2)
    assert len(robot.received) == 6
    assert (count(n, "robot", "sent"), count(n, "robot", "failed")) == (1, 1)
    # ours (httpx names the URL at INFO: pumpwatch.logs holds it to errors)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("maintenance"))
    assert "errcode 93000" in logged
    assert "attempt 3 of 3 failed (HTTP 503" in logged
    assert "secret-key" not in logged


async def test_a_client_error_is_not_retried_but_a_rate_limit_is(robot: Robot) -> None:
    n = robot_notifier(robot.url)
    robot.replies = [(404, {"error": "no such robot"}), (429, {"error": "slow down"})]  # then ok
    n.tell(notice("gone"))
    n.tell(notice("busy"))
    await deliver(n, 2)
    assert [m["text"]["content"] for m in robot.received] == ["gone", "busy", "busy"]
    assert (count(n, "robot", "sent"), count(n, "robot", "failed")) == (1, 1)


async def test_a_channel_that_breaks_costs_one_notice_not_the_loop(
        robot: Robot, monkeypatch: pytest.MonkeyPatch) -> None:
    n = robot_notifier(robot.url)
    channel = n.outboxes["robot"].channel
    send = channel.send

    async def broken_once(notice: Notice) -> None:
        monkeypatch.setattr(channel, "send", send)
        raise RuntimeError("a bug in the channel")

    monkeypatch.setattr(channel, "send", broken_once)
    n.tell(notice("lost"))
    n.tell(notice("next"))
    await deliver(n, 2)
    assert [m["text"]["content"] for m in robot.received] == ["next"]
    assert (count(n, "robot", "sent"), count(n, "robot", "failed")) == (1, 1)


def test_each_channel_queue_is_bounded_and_drops_its_oldest() -> None:
    n = notifier(NotifySettings(queue_limit=2, channels=[
        RobotChannelSettings(url=SecretStr("http://127.0.0.1:9/never?key=k")),
        JsonWebhookSettings(url=SecretStr("http://127.0.0.1:9/never"))]))
    for i in range(3):
        n.tell(notice(str(i)))
    assert queued(n, "robot") == queued(n, "json") == ["1", "2"]
    assert count(n, "robot", "dropped") == count(n, "json", "dropped") == 1
    assert count(n, "robot", "sent") == 0  # every channel's outcomes exist from the start


def test_each_channel_tells_alarms_from_its_own_threshold_and_every_escalation() -> None:
    n = notifier(NotifySettings(min_severity="minor", channels=[
        RobotChannelSettings(url=SecretStr("http://127.0.0.1:9/never"), min_severity="critical"),
        JsonWebhookSettings(url=SecretStr("http://127.0.0.1:9/never"))]))
    for severity in (Severity.WARNING, Severity.MINOR, Severity.MAJOR, Severity.CRITICAL):
        n.tell(notice(severity.value, severity))
    n.tell(notice("escalation"))
    assert queued(n, "robot") == ["critical", "escalation"]
    assert queued(n, "json") == ["minor", "major", "critical", "escalation"]


async def test_a_mail_server_that_hangs_then_refuses_never_holds_up_nor_costs_the_robot(robot: Robot) -> None:
    with SmtpServer() as smtp:
        n = notifier(NotifySettings(webhook_url=SecretStr(robot.url), channels=[EmailChannelSettings(
            host=HOST, port=smtp.port, sender="pumpwatch@example.com", recipients=["duty@example.com"])]))
        smtp.open.clear()  # the mail server takes the first mail and does not answer
        smtp.replies = ["451 4.3.0 try again later"] * 3  # then refuses it three times
        first, second = notice("【示范小区】一 / one"), notice("【示范小区】二 / two")
        n.tell(first)
        n.tell(second)
        runner = asyncio.create_task(n.run())
        try:
            await until(lambda: count(n, "robot", "sent") == 2)
            assert [m["text"]["content"] for m in robot.received] == [first.text, second.text]
            assert count(n, "email", "sent") + count(n, "email", "failed") == 0  # still waiting
            assert smtp.received == []
            smtp.open.set()
            await until(lambda: count(n, "email", "sent") + count(n, "email", "failed") == 2)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
    assert smtp.data_commands == 4  # the first mail three times, the second once
    assert (count(n, "email", "sent"), count(n, "email", "failed")) == (1, 1)
    assert [m.message["Subject"] for m in smtp.received] == [second.headline]
    assert (count(n, "robot", "sent"), count(n, "robot", "failed")) == (2, 0)

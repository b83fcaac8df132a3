"""Notifications: serious alarms and late tasks, told to a chat-group robot or any JSON webhook.

Property managers live in WeCom / DingTalk groups; both take a group robot's
`{"msgtype": "text", "text": {"content": ...}}`, which is the default style. The `json` style posts
the structured notice for other systems. Only changes this process made are told (the replica whose
transaction raised an alarm, the one that took an escalation), so two API replicas never tell twice.

Policy: notices wait in a bounded queue (`queue_limit`; when full the oldest is dropped and counted);
each is posted up to `ATTEMPTS` times with growing pauses, then counted as failed. Counter:
`pumpwatch_notifications_total{outcome=sent|failed|dropped}`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from prometheus_client import CollectorRegistry, Counter

from maintenance.models import Alarm
from maintenance.task_flow import Escalation, EscalationLevel
from pumpwatch.alarm_events import SEVERITY_RANK
from pumpwatch.settings import NotifySettings
from pumpwatch.site import Severity

log = logging.getLogger(__name__)

ATTEMPTS = 3
FIRST_PAUSE = 1.0  # seconds before the second attempt; doubled before each further one
TOLD_ALARM_CHANGES = {"raised": ("告警", "alarm raised"), "reopened": ("告警再次出现", "alarm back"),
                      "escalated": ("告警升级", "alarm escalated")}
_SEVERITY_ZH = {Severity.CRITICAL: "紧急", Severity.MAJOR: "重要", Severity.MINOR: "次要",
                Severity.WARNING: "提示"}
_LEVEL_TEXT = {
    EscalationLevel.REMINDER: ("任务即将超时，提醒执行人", "task due soon: reminder to the assignees"),
    EscalationLevel.SUPERVISOR: ("任务超时，已上报主管", "task overdue: escalated to the supervisor"),
    EscalationLevel.DIRECTOR: ("任务严重超时，已上报管理处主任", "long overdue: escalated to the director"),
}


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing to tell: a bilingual text for people and the same facts as data."""

    text: str
    data: dict[str, Any]


class Notifier:
    """Formats and delivers notices; `run` posts them until cancelled."""

    def __init__(self, settings: NotifySettings, registry: CollectorRegistry, timezone: str,
                 site_name: str, *, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.zone = ZoneInfo(timezone)
        self.site_name = site_name
        self.queue: deque[Notice] = deque()
        self.told = Counter("pumpwatch_notifications_total", "Notifications, by outcome", ["outcome"],
                            registry=registry)
        self._ready = asyncio.Event()
        self._client = client

    @property
    def enabled(self) -> bool:
        """Whether a webhook is configured."""
        return self.settings.webhook_url is not None

    # --- what is told ------------------------------------------------------------------------------

    def alarm_changed(self, change: str | None, alarm: Alarm | None) -> None:
        """An alarm change this process made: told when raised, back or escalated at the threshold."""
        if not self.enabled or alarm is None or change not in TOLD_ALARM_CHANGES:
            return
        severity = Severity(alarm.severity)
        if SEVERITY_RANK[severity] < SEVERITY_RANK[Severity(self.settings.min_severity)]:
            return
        zh, en = TOLD_ALARM_CHANGES[change]
        value = "" if alarm.last_value is None else f"\n数值 value: {alarm.last_value:g}"
        text = (f"【{self.site_name}】{_SEVERITY_ZH[severity]}{zh} / {severity.value} {en}\n"
                f"{alarm.message_zh} / {alarm.message_en}\n"
                f"泵房 room: {alarm.room}  设备 asset: {alarm.asset}{value}\n"
                f"时间 at: {self._local(alarm.started_at)}  告警 #{alarm.id}")
        self._put(Notice(text, {"kind": "alarm", "change": change, "id": alarm.id, "asset": alarm.asset,
                                "alarm_type": alarm.alarm_type, "room": alarm.room,
                                "severity": severity.value, "value": alarm.last_value,
                                "message": {"zh": alarm.message_zh, "en": alarm.message_en},
                                "started_at": alarm.started_at.isoformat()}))

    def escalated(self, step: Escalation) -> None:
        """One SLA escalation step of a task."""
        if not self.enabled:
            return
        zh, en = _LEVEL_TEXT.get(step.level, ("任务升级", "task escalated"))
        where = " ".join(part for part in (step.room and f"泵房 room: {step.room}",
                                           step.asset and f"设备 asset: {step.asset}") if part)
        text = (f"【{self.site_name}】{zh} / {en}\n"
                f"任务 task #{step.task_id}: {step.title.zh} / {step.title.en}\n"
                f"优先级 priority: {step.priority.value}  截止 due: {self._local(step.due_at)}"
                + (f"\n{where}" if where else ""))
        notify = step.notify
        self._put(Notice(text, {"kind": "escalation", "task_id": step.task_id, "level": int(step.level),
                                "notify": notify.value if notify is not None else None,
                                "priority": step.priority.value, "due_at": step.due_at.isoformat(),
                                "title": {"zh": step.title.zh, "en": step.title.en}, "room": step.room,
                                "asset": step.asset, "assignees": list(step.assignees)}))

    def _local(self, at: datetime) -> str:
        return at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")

    def _put(self, notice: Notice) -> None:
        if len(self.queue) >= self.settings.queue_limit:
            self.queue.popleft()
            self.told.labels(outcome="dropped").inc()
            log.warning("notification queue full (%d): the oldest notice was dropped",
                        self.settings.queue_limit)
        self.queue.append(notice)
        self._ready.set()

    # --- delivery ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Post queued notices one by one until cancelled."""
        if not self.enabled:
            await asyncio.Event().wait()
        client = self._client or httpx.AsyncClient(timeout=10.0)
        try:
            while True:
                while not self.queue:
                    self._ready.clear()
                    await self._ready.wait()
                await self._deliver(client, self.queue.popleft())
        finally:
            if self._client is None:
                await client.aclose()

    async def _deliver(self, client: httpx.AsyncClient, notice: Notice) -> None:
        assert self.settings.webhook_url is not None
        url = self.settings.webhook_url.get_secret_value()
        body = ({"msgtype": "text", "text": {"content": notice.text}} if self.settings.style == "robot"
                else notice.data)
        pause = FIRST_PAUSE
        for attempt in range(1, ATTEMPTS + 1):
            try:
                resp = await client.post(url, json=body)
                if resp.is_success and _robot_accepted(resp):
                    self.told.labels(outcome="sent").inc()
                    return
                problem = f"HTTP {resp.status_code}: {resp.text[:200]}"
            except httpx.HTTPError as err:
                problem = f"{type(err).__name__}: {err}"
            # the URL carries the robot's key: it is never logged
            log.warning("notification attempt %d of %d failed (%s)", attempt, ATTEMPTS, problem)
            if attempt < ATTEMPTS:
                await asyncio.sleep(pause)
                pause *= 2
        self.told.labels(outcome="failed").inc()
        log.error("notification not delivered after %d attempts: %s", ATTEMPTS, notice.text.splitlines()[0])


def _robot_accepted(resp: httpx.Response) -> bool:
    """WeCom and DingTalk answer HTTP 200 with `errcode` != 0 when they refuse a message."""
    try:
        data = resp.json()
    except ValueError:
        return True  # not a robot: the HTTP status says it all
    return not (isinstance(data, dict) and data.get("errcode", 0) != 0)

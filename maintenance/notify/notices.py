"""What is told and how it reads: alarm changes and task escalations as bilingual text plus data (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from maintenance.handover import HandoverEscalation
from maintenance.models import Alarm
from maintenance.task_flow import Escalation, EscalationLevel
from maintenance.vocab import SlaClock
from pumpwatch.alarm_events import SEVERITY_RANK
from pumpwatch.site import Severity

TOLD_ALARM_CHANGES = {"raised": ("告警", "alarm raised"), "reopened": ("告警再次出现", "alarm back"),
                      "escalated": ("告警升级", "alarm escalated")}
_SEVERITY_ZH = {Severity.CRITICAL: "紧急", Severity.MAJOR: "重要", Severity.MINOR: "次要",
                Severity.WARNING: "提示"}
_LEVEL_TEXT = {  # per clock: response (someone takes the task on), resolution (the work is done)
    (SlaClock.RESPONSE, EscalationLevel.REMINDER): (
        "任务即将超过响应时限，请尽快接单或派工", "response due soon: take the task on or assign it"),
    (SlaClock.RESPONSE, EscalationLevel.SUPERVISOR): (
        "任务超过响应时限仍无人响应，已上报主管", "no response in time: escalated to the supervisor"),
    (SlaClock.RESPONSE, EscalationLevel.DIRECTOR): (
        "任务严重超过响应时限，已上报管理处主任", "still no response: escalated to the director"),
    (SlaClock.RESOLUTION, EscalationLevel.REMINDER): (
        "任务即将超过完成时限，提醒执行人", "resolution due soon: reminder to the assignees"),
    (SlaClock.RESOLUTION, EscalationLevel.SUPERVISOR): (
        "任务超过完成时限，已上报主管", "not resolved in time: escalated to the supervisor"),
    (SlaClock.RESOLUTION, EscalationLevel.DIRECTOR): (
        "任务严重超过完成时限，已上报管理处主任", "resolution long overdue: escalated to the director"),
}
_DEADLINE_TEXT = {SlaClock.RESPONSE: "响应时限 respond by", SlaClock.RESOLUTION: "完成时限 resolve by"}


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing to tell: a bilingual text for people (its first line the headline) and the facts as data.

    `severity` is the alarm's; a notice without one (a task escalation) is told on every channel.
    """

    text: str
    data: dict[str, Any]
    severity: Severity | None = None

    @property
    def headline(self) -> str:
        """The first line, e.g. `【示范小区】紧急告警 / critical alarm raised` (a mail's subject)."""
        return self.text.split("\n", 1)[0]

    def told_from(self, min_severity: Severity) -> bool:
        """Whether a channel that tells alarms from `min_severity` up tells this notice."""
        return self.severity is None or SEVERITY_RANK[self.severity] >= SEVERITY_RANK[min_severity]


class NoticeFormatter:
    """Turns alarm changes and escalation steps into notices, with times in the site's zone.

    A notice is headed with the name of its estate (`estate_names`: estate id -> name; `site_name` for
    one the names do not know).
    """

    def __init__(self, timezone: str, site_name: str, estate_names: dict[str, str] | None = None) -> None:
        self.zone = ZoneInfo(timezone)
        self.site_name = site_name
        self.estate_names = dict(estate_names or {})

    def _name(self, estate: str) -> str:
        return self.estate_names.get(estate, self.site_name)

    def alarm(self, change: str | None, alarm: Alarm | None) -> Notice | None:
        """The notice of an alarm change, if it is one that is told (raised, back, escalated)."""
        if alarm is None or change not in TOLD_ALARM_CHANGES:
            return None
        severity = Severity(alarm.severity)
        zh, en = TOLD_ALARM_CHANGES[change]
        value = "" if alarm.last_value is None else f"\n数值 value: {alarm.last_value:g}"
        text = (f"【{self._name(alarm.estate)}】{_SEVERITY_ZH[severity]}{zh} / {severity.value} {en}\n"
                f"{alarm.message_zh} / {alarm.message_en}\n"
                f"泵房 room: {alarm.room}  设备 asset: {alarm.asset}{value}\n"
                f"时间 at: {self._local(alarm.started_at)}  告警 #{alarm.id}")
        return Notice(text, {"kind": "alarm", "change": change, "id": alarm.id, "estate": alarm.estate,
                             "asset": alarm.asset,
                             "alarm_type": alarm.alarm_type, "room": alarm.room, "severity": severity.value,
                             "value": alarm.last_value,
                             "message": {"zh": alarm.message_zh, "en": alarm.message_en},
                             "started_at": alarm.started_at.isoformat()}, severity)

    def escalation(self, step: Escalation) -> Notice:
        """The notice of one SLA escalation step of a task, saying which clock (response or resolution)."""
        zh, en = _LEVEL_TEXT.get((step.clock, step.level), ("任务升级", "task escalated"))
        where = " ".join(part for part in (step.room and f"泵房 room: {step.room}",
                                           step.asset and f"设备 asset: {step.asset}") if part)
        text = (f"【{self._name(step.estate)}】{zh} / {en}\n"
                f"任务 task #{step.task_id}: {step.title.zh} / {step.title.en}\n"
                f"优先级 priority: {step.priority.value}  "
                f"{_DEADLINE_TEXT[step.clock]}: {self._local(step.due_at)}"
                + (f"\n{where}" if where else ""))
        notify = step.notify
        return Notice(text, {"kind": "escalation", "task_id": step.task_id, "estate": step.estate,
                             "level": int(step.level),
                             "clock": step.clock.value, "cycle": step.cycle,
                             "notify": notify.value if notify is not None else None,
                             "priority": step.priority.value, "due_at": step.due_at.isoformat(),
                             "title": {"zh": step.title.zh, "en": step.title.en}, "room": step.room,
                             "asset": step.asset, "assignees": list(step.assignees)})

    def handover(self, step: HandoverEscalation) -> Notice:
        """The notice to the supervisor of a shift handover nobody accepted in time."""
        zh, en = (("交接班有异议，未被接收", "handover disputed, not accepted") if step.state == "disputed"
                  else ("交接班超时未被接收", "handover not accepted in time"))
        room = f"泵房 room: {step.room}" if step.room else "全站 whole site"
        incoming = f"  接班 to: {step.incoming}" if step.incoming else ""
        text = (f"【{self._name(step.estate)}】{zh}，已通知主管 / {en}: supervisor told\n"
                f"交接班 handover #{step.handover_id}  {room}\n"
                f"交班 from: {step.outgoing}{incoming}  提交 submitted: {self._local(step.submitted_at)}")
        return Notice(text, {"kind": "handover", "handover_id": step.handover_id, "estate": step.estate,
                             "state": step.state,
                             "notify": "supervisor", "room": step.room, "outgoing": step.outgoing,
                             "incoming": step.incoming, "submitted_at": step.submitted_at.isoformat()})

    def _local(self, at: datetime) -> str:
        return at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")

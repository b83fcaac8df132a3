"""The monthly maintenance report: ready from the 1st of the next month, due by the 5th.

Counts tasks raised, done and overdue by kind; response times (raised -> started) and completion
times (raised -> technician's signature) against the SLA; repeat faults per asset; duty-rotation
compliance; parts used. As a dict (JSON), CSV, and a printable HTML page.
"""

from __future__ import annotations

import csv
import html
import io
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from maintenance.models import Task
from maintenance.task_flow import SlaPolicy
from maintenance.vocab import TaskState

DONE = {TaskState.DONE.value, TaskState.VERIFIED.value}


@dataclass(frozen=True)
class Month:
    """A calendar month in the site's time zone."""

    year: int
    month: int
    tz: ZoneInfo

    @property
    def start(self) -> datetime:
        """First instant of the month (aware, UTC)."""
        return datetime.combine(date(self.year, self.month, 1), time(), self.tz).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """First instant of the next month (aware, UTC)."""
        nxt = date(self.year + self.month // 12, self.month % 12 + 1, 1)
        return datetime.combine(nxt, time(), self.tz).astimezone(UTC)

    @property
    def due(self) -> datetime:
        """The report is due by the end of the 5th of the next month."""
        nxt = date(self.year + self.month // 12, self.month % 12 + 1, 5)
        return datetime.combine(nxt, time(23, 59, 59), self.tz).astimezone(UTC)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def _minutes(delta: timedelta) -> float:
    return round(delta.total_seconds() / 60, 1)


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "median_min": None, "max_min": None}
    return {"count": len(values), "median_min": round(statistics.median(values), 1),
            "max_min": round(max(values), 1)}


class MonthlyReport:
    """Builds the report of one month from the task records."""

    def __init__(self, sessions: sessionmaker[Session], sla: SlaPolicy | None = None) -> None:
        self._sessions = sessions
        self.sla = sla or SlaPolicy()

    def build(self, month: Month, now: datetime) -> dict[str, Any]:
        """The report as JSON-ready data; `final` once the month is over."""
        with self._sessions() as session:
            tasks = list(session.scalars(select(Task).where(Task.created_at >= month.start,
                                                            Task.created_at < month.end)))
        by_kind: dict[str, Counter[str]] = defaultdict(Counter)
        responses: list[float] = []
        completions: list[float] = []
        response_ok = completion_ok = 0
        repeats: Counter[str] = Counter()
        parts: dict[tuple[str, str], float] = defaultdict(float)
        rotation_total = rotation_on_time = 0
        cutoff = min(now, month.end)
        for task in tasks:
            counts = by_kind[task.kind]
            counts["raised"] += 1
            done_at = task.technician_signed_at
            if task.state in DONE:
                counts["done"] += 1
            if task.state == TaskState.CANCELLED.value:
                counts["cancelled"] += 1
            overdue = task.due_at is not None and (
                (done_at is not None and done_at > task.due_at)
                or (done_at is None and task.state != TaskState.CANCELLED.value and task.due_at < cutoff))
            if overdue:
                counts["overdue"] += 1
            window = self.sla.window(task.priority)
            if task.started_at is not None:
                response = task.started_at - task.created_at
                responses.append(_minutes(response))
                response_ok += response <= window
            if done_at is not None:
                completion = done_at - task.created_at
                completions.append(_minutes(completion))
                completion_ok += task.due_at is None or done_at <= task.due_at
            if task.asset and (task.repeat_count or task.kind in ("alarm", "fault")):
                repeats[task.asset] += task.repeat_count
            for used in task.parts_used:
                parts[(str(used.get("part")), str(used.get("unit", "pcs")))] += float(used.get("quantity", 0))
            if task.plan_key and task.plan_key.startswith("rotation"):
                rotation_total += 1
                rotation_on_time += done_at is not None and (task.due_at is None or done_at <= task.due_at)
        return {
            "month": str(month),
            "final": now >= month.end,
            "ready_from": month.end.isoformat(),
            "due_by": month.due.isoformat(),
            "tasks_by_kind": {kind: {k: c.get(k, 0) for k in ("raised", "done", "overdue", "cancelled")}
                              for kind, c in sorted(by_kind.items())},
            "totals": {k: sum(c.get(k, 0) for c in by_kind.values())
                       for k in ("raised", "done", "overdue", "cancelled")},
            "response_minutes": _stats(responses) | {"within_sla": response_ok},
            "completion_minutes": _stats(completions) | {"within_sla": completion_ok},
            "repeat_faults": [{"asset": a, "repeats": n} for a, n in repeats.most_common() if n > 0],
            "rotation": {"planned": rotation_total, "done_on_time": rotation_on_time,
                         "compliance": (round(rotation_on_time / rotation_total, 3)
                                        if rotation_total else None)},
            "parts_used": [{"part": p, "unit": u, "quantity": q} for (p, u), q in sorted(parts.items())],
        }


def to_csv(report: dict[str, Any]) -> str:
    """The report as CSV: one section per table, `section,key,value` rows."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "key", "field", "value"])
    writer.writerow(["report", "month", "", report["month"]])
    writer.writerow(["report", "final", "", report["final"]])
    for kind, counts in report["tasks_by_kind"].items():
        for field, value in counts.items():
            writer.writerow(["tasks", kind, field, value])
    for name in ("response_minutes", "completion_minutes"):
        for field, value in report[name].items():
            writer.writerow([name, "", field, "" if value is None else value])
    for row in report["repeat_faults"]:
        writer.writerow(["repeat_faults", row["asset"], "repeats", row["repeats"]])
    for field, value in report["rotation"].items():
        writer.writerow(["rotation", "", field, "" if value is None else value])
    for row in report["parts_used"]:
        writer.writerow(["parts_used", row["part"], row["unit"], row["quantity"]])
    return out.getvalue()


def to_html(report: dict[str, Any], site_name: str) -> str:
    """A printable page (bilingual headings, no scripts)."""
    e = html.escape

    def table(headers: list[str], rows: list[list[Any]]) -> str:
        head = "".join(f"<th>{e(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body or '<tr><td>-</td></tr>'}</tbody></table>"

    kinds = [[k, c["raised"], c["done"], c["overdue"], c["cancelled"]]
             for k, c in report["tasks_by_kind"].items()]
    times = [[name, s["count"], s["median_min"], s["max_min"], s["within_sla"]]
             for name, s in (("响应 Response", report["response_minutes"]),
                             ("完成 Completion", report["completion_minutes"]))]
    rot = report["rotation"]
    return f"""<!doctype html>
<html lang="zh-Hans"><head><meta charset="utf-8"><title>{e(site_name)} {e(report['month'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #444;padding:4px 8px;text-align:left}}@media print{{body{{margin:0}}}}</style>
</head><body>
<h1>{e(site_name)} 月度维保报告 Monthly maintenance report {e(report['month'])}</h1>
<p>{'定稿 Final' if report['final'] else '预览 Preliminary'} · 截止 Due by {e(report['due_by'][:10])}</p>
<h2>任务 Tasks</h2>{table(['类型 Kind', '新增 Raised', '完成 Done', '逾期 Overdue', '取消 Cancelled'], kinds)}
<h2>时效 Times (min)</h2>{table(['', '数量 Count', '中位 Median', '最长 Max', '达标 Within SLA'], times)}
<h2>重复故障 Repeat faults</h2>{table(['设备 Asset', '次数 Repeats'],
                                      [[r['asset'], r['repeats']] for r in report['repeat_faults']])}
<h2>轮换 Duty rotation</h2>{table(['计划 Planned', '按时 On time', '合规率 Compliance'],
                                  [[rot['planned'], rot['done_on_time'], rot['compliance']]])}
<h2>备件 Parts used</h2>{table(['备件 Part', '单位 Unit', '数量 Quantity'],
                               [[p['part'], p['unit'], p['quantity']] for p in report['parts_used']])}
<p>技术员签字 Technician ____________ 主管签字 Supervisor ____________</p>
</body></html>
"""

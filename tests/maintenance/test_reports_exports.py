"""The report's exports from the same data: CSV whose cells never run, the printable page, the PDF.

The PDF is parsed back (pypdf): the Chinese header, the page count on every page, the signature lines,
the amendments; the archived bytes' SHA-256 is the one in the audit trail.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from maintenance.alarms import AlarmService
from maintenance.errors import InvalidInput
from maintenance.models import AuditLog, utc_from_epoch
from maintenance.reports import Month, MonthlyReport, to_csv, to_html, to_pdf
from maintenance.reports.pdf import fonts
from maintenance.tasks import TaskService
from maintenance.vocab import Priority
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.clock import FakeClock
from pumpwatch.site import Severity, Text
from pumpwatch.sitefile import load_site
from tests.support.state import People

HV = "harbour-view"  # the estate of examples/site.yaml

SHANGHAI = ZoneInfo("Asia/Shanghai")
MARCH = Month(2026, 3, SHANGHAI)
EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
FORMULA = '=HYPERLINK("http://evil.example/x","click")'


def at(clock: FakeClock, when: datetime) -> datetime:
    asyncio.run(clock.advance(when.timestamp() - clock.now()))
    return utc_from_epoch(clock.now())


def busy_march(clock: FakeClock, tasks: TaskService, alarms: AlarmService, people: People) -> None:
    """A month with work of several kinds, parts (one named like a formula), repeats, a late completion."""
    p = people
    at(clock, datetime(2026, 3, 3, 9, tzinfo=SHANGHAI))
    for i in range(6):
        task = tasks.create_task(p.operator, Text(zh="出口法兰漏水", en="outlet flange leak"),
                                 priority=Priority.HIGH, asset=f"dom-p{1 + i % 2}", estate=HV)
        tasks.assign(task.id, p.supervisor, [p.technician.id])
        tasks.start(task.id, p.technician)
        tasks.add_part(task.id, p.technician, FORMULA if i == 0 else "机械密封 mechanical seal", 1,
                       unit="-1" if i == 0 else "pcs")
        if i < 5:
            tasks.complete(task.id, p.technician, "密封老化 worn seal", "更换密封 replaced the seal")
        if i < 3:
            tasks.verify(task.id, p.supervisor2)
    key = AlarmKey("dom-ptank", "leak", HV)
    for action in (AlarmAction.RAISED, AlarmAction.CLEARED, AlarmAction.RAISED):
        alarms.apply(AlarmEvent(action, key, Severity.CRITICAL, clock.now(), "dom",
                                Text(zh="水箱漏水", en="tank leak")))
        asyncio.run(clock.advance(600))


def test_a_formula_in_a_part_name_comes_out_inert_in_the_csv(sessions: sessionmaker[Session],
                                                             clock: FakeClock,
                                                             tasks: TaskService, alarms: AlarmService,
                                                             people: People) -> None:
    busy_march(clock, tasks, alarms, people)
    report = MonthlyReport(sessions).report(MARCH, utc_from_epoch(clock.now()))
    text = to_csv(report)
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    parts = [row for row in rows if row[0] == "parts_used"]
    assert ["parts_used", "'" + FORMULA, "'-1", "1.0"] in parts
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)
    assert ["tasks", "fault 故障报修 Fault report", "completed", "5"] in rows
    assert ["sla", "response", "met", "6"] in rows
    page = to_html(report, "海景花园 <b>")
    assert "海景花园 &lt;b&gt;" in page
    assert "<script" not in page
    assert "=HYPERLINK(&quot;http://evil.example/x&quot;" in page  # escaped, shown as text


def test_the_archived_pdf_has_the_chinese_header_page_numbers_and_its_hash_in_the_audit_trail(
        sessions: sessionmaker[Session], clock: FakeClock, tasks: TaskService, alarms: AlarmService,
        people: People) -> None:
    busy_march(clock, tasks, alarms, people)
    reports = MonthlyReport(sessions, site=load_site(EXAMPLE), clock=clock)
    reports.close_due(at(clock, datetime(2026, 4, 1, 0, 5, tzinfo=SHANGHAI)))
    now = at(clock, datetime(2026, 4, 2, 9, tzinfo=SHANGHAI))
    tasks.complete(6, people.technician, "late", "late fix")  # an amendment the PDF lists
    reports.sign(MARCH, people.supervisor, now)
    reports.sign(MARCH, people.director, at(clock, datetime(2026, 4, 2, 10, tzinfo=SHANGHAI)))
    pdf, digest = reports.pdf(MARCH, utc_from_epoch(clock.now()))
    assert digest == hashlib.sha256(pdf).hexdigest()
    with sessions() as session:
        [archived] = session.scalars(select(AuditLog).where(AuditLog.entity == "report",
                                                            AuditLog.action == "archived"))
    assert archived.after is not None
    assert archived.after["sha256"] == digest
    again, _ = reports.pdf(MARCH, utc_from_epoch(clock.now()))
    assert again == pdf  # the archived bytes, not a new rendering

    reader = PdfReader(io.BytesIO(pdf))
    pages = len(reader.pages)
    assert pages >= 2
    texts = [page.extract_text() for page in reader.pages]
    site = load_site(EXAMPLE).site.name
    for number, text in enumerate(texts, start=1):
        assert site.zh in text
        assert "月度维保报告 2026-03" in text
        assert "定稿 Final" in text
        assert f"第 {number} 页 / 共 {pages} 页" in text
    whole = "\n".join(texts)
    for heading in ("任务概况", "故障报修", "报警工单", "响应与处理时效", "重复故障", "主备泵轮换",
                    "更正记录",
                    "编制 Prepared by", "审核 Approved by", people.supervisor.display_name,
                    people.director.display_name, "完成（技术员签字）"):
        assert heading in whole, heading
    assert reader.metadata is not None
    assert reader.metadata.title == f"{site.zh} 月度维保报告 2026-03"


def test_a_preview_pdf_says_so_and_is_not_archived(sessions: sessionmaker[Session], clock: FakeClock,
                                                   tasks: TaskService, alarms: AlarmService,
                                                   people: People) -> None:
    busy_march(clock, tasks, alarms, people)
    pdf, digest = MonthlyReport(sessions).pdf(MARCH, utc_from_epoch(clock.now()))
    assert digest is None
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "预览 Preview" in text
    assert "定稿 Final" not in text
    assert "第 1 页 / 共" in text


def test_the_pdf_falls_back_to_a_built_in_cid_font_without_a_truetype_one() -> None:
    assert fonts.choose(()) == fonts.FALLBACK  # no file at all: STSong-Light, which the viewer supplies
    assert fonts.choose((Path("/nonexistent/font.ttc"),)) == fonts.FALLBACK
    wqy = fonts.CANDIDATES[0]
    if wqy.is_file():  # scripts/test installs it; the report then embeds it
        assert fonts.choose((wqy,)) == fonts.EMBEDDED


def test_an_empty_month_still_renders(clock: FakeClock) -> None:
    report = {"month": "2026-02", "site": {"zh": "测试", "en": "Test"}, "status": "preview",
              "timezone": "Asia/Shanghai", "tasks_by_kind": {}, "states_at_end": {}, "totals": {},
              "sla": {}, "repeat_faults": [], "rotation": {}, "parts_used": [], "amendments": [],
              "signatures": {"prepared": None, "approved": None}}
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(to_pdf(report))).pages)
    assert "本月无数据" in text
    assert "无 None" in text


@pytest.mark.parametrize("month", ["2026-3", "26-03", "2026-00", "2026-13", "abcd-ef", "0001-01"])
def test_a_malformed_month_is_refused(month: str) -> None:
    with pytest.raises(InvalidInput):
        Month.parse(month, SHANGHAI)

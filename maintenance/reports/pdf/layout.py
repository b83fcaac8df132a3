"""The printable monthly report as a PDF: header, charts, tables in both languages, amendments, signatures.

A4 with 18 mm side margins; every page carries the site, the month and the status (定稿 final or 预览
preview, the preview also watermarked) at the top and "第 n 页 / 共 m 页" at the bottom. Written with
`invariant` set, so the same report gives the same bytes (no creation time or random document id).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.flowables import Flowable

from maintenance.reports import names
from maintenance.reports.pdf import charts
from maintenance.reports.pdf.fonts import register
from pumpwatch.site import Text

MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 18 * mm, 30 * mm, 20 * mm
HEAD = colors.HexColor("#1f3b57")
RULE = colors.HexColor("#8a94a6")
FINAL, PREVIEW = colors.HexColor("#2f6f46"), colors.HexColor("#c07a10")


def _styles(font: str) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=font, fontSize=9, leading=12.5, wordWrap="CJK")
    return {
        "base": base,
        "title": ParagraphStyle("title", parent=base, fontSize=17, leading=22, alignment=TA_CENTER,
                                textColor=HEAD),
        "subtitle": ParagraphStyle("subtitle", parent=base, fontSize=10.5, leading=14, alignment=TA_CENTER,
                                   textColor=RULE),
        "h2": ParagraphStyle("h2", parent=base, fontSize=12, leading=16, textColor=HEAD, spaceBefore=10,
                             spaceAfter=4),
        "cell": ParagraphStyle("cell", parent=base, fontSize=8.5, leading=11),
        # Headers put Chinese over English and break only between words: narrow columns, whole words.
        "head": ParagraphStyle("head", parent=base, fontSize=8, leading=10, textColor=colors.white,
                               wordWrap=None),
        "note": ParagraphStyle("note", parent=base, fontSize=8, leading=10.5,
                               textColor=colors.HexColor("#555555")),
    }


def _esc(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _heading(label: str) -> str:
    """`新增 Raised` as Chinese over English."""
    zh, _, en = label.partition(" ")
    return f"{_esc(zh)}<br/>{_esc(en)}" if en else _esc(zh)


def _cell(value: object, style: ParagraphStyle) -> Flowable:
    return value if isinstance(value, Flowable) else Paragraph(_esc(value), style)


def _table(styles: dict[str, ParagraphStyle], header: Sequence[str], rows: Sequence[Sequence[object]],
           widths: Sequence[float], total: bool = False) -> Table:
    """A table whose cells wrap (Chinese included) and whose header repeats on every page it spans."""
    data: list[list[Flowable | str]] = [[Paragraph(_heading(h), styles["head"]) for h in header]]
    data += [[_cell(c, styles["cell"]) for c in row] for row in rows]
    if not rows:
        empty: list[Flowable | str] = [Paragraph("无 None", styles["cell"])]
        data.append(empty + [""] * (len(header) - 1))
    table = Table(data, colWidths=list(widths), repeatRows=1)
    commands: list[tuple[Any, ...]] = [
        ("FONTNAME", (0, 0), (-1, -1), styles["base"].fontName),  # plain (empty) cells too
        ("BACKGROUND", (0, 0), (-1, 0), HEAD),
        ("GRID", (0, 0), (-1, -1), 0.4, RULE),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f3f5f8")]),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
    ]
    if not rows:
        commands.append(("SPAN", (0, 1), (-1, 1)))
    if total and rows:
        commands.append(("BACKGROUND", (0, -1), (-1, -1), colors.HexColor("#e4e8ee")))
    table.setStyle(TableStyle(commands))
    return table


def _share(value: object) -> str:
    return "—" if not isinstance(value, int | float) else f"{value * 100:.1f}%"


def _num(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _local(value: object, zone: ZoneInfo) -> str:
    """An ISO instant of the report as the site's wall-clock time."""
    if not isinstance(value, str) or not value:
        return "—"
    return datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _zone(report: dict[str, Any]) -> ZoneInfo:
    try:
        return ZoneInfo(str(report.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


class _Page:
    """Draws the header, the watermark of a preview and the page footer."""

    def __init__(self, report: dict[str, Any], font: str) -> None:
        self.font = font
        site = report.get("site") or {}
        self.site = Text(zh=str(site.get("zh", "")), en=str(site.get("en", "")))
        self.month = str(report["month"])
        self.final = report.get("status") == "closed"

    def header(self, canvas: Canvas, _doc: object) -> None:
        width, height = A4
        canvas.saveState()
        top = height - 14 * mm
        canvas.setFillColor(HEAD)
        canvas.setFont(self.font, 11)
        canvas.drawString(MARGIN_X, top, self.site.zh)
        canvas.setFont(self.font, 8)
        canvas.setFillColor(RULE)
        canvas.drawString(MARGIN_X, top - 11, self.site.en)
        canvas.setFillColor(HEAD)
        canvas.setFont(self.font, 10)
        canvas.drawCentredString(width / 2, top, f"{names.TITLE.zh} {self.month}")
        canvas.setFont(self.font, 8)
        canvas.drawCentredString(width / 2, top - 11, f"{names.TITLE.en} {self.month}")
        status = names.STATUS["closed" if self.final else "preview"]
        colour = FINAL if self.final else PREVIEW
        label = f"{status.zh} {status.en}"
        box = canvas.stringWidth(label, self.font, 10) + 12
        canvas.setStrokeColor(colour)
        canvas.setFillColor(colour)
        canvas.setLineWidth(1.2)
        canvas.roundRect(width - MARGIN_X - box, top - 13, box, 20, 3, stroke=1, fill=0)
        canvas.setFont(self.font, 10)
        canvas.drawCentredString(width - MARGIN_X - box / 2, top - 6, label)
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.6)
        canvas.line(MARGIN_X, height - MARGIN_TOP + 6 * mm, width - MARGIN_X, height - MARGIN_TOP + 6 * mm)
        if not self.final:  # a preview must never pass for the final report
            canvas.setFillColor(colors.Color(0.85, 0.55, 0.1, alpha=0.12))
            canvas.setFont(self.font, 64)
            canvas.translate(width / 2, height / 2)
            canvas.rotate(35)
            canvas.drawCentredString(0, 0, "预览 PREVIEW")
        canvas.restoreState()

    def footer(self, canvas: Canvas, page: int, pages: int) -> None:
        width, _height = A4
        canvas.saveState()
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.6)
        canvas.line(MARGIN_X, MARGIN_BOTTOM - 5 * mm, width - MARGIN_X, MARGIN_BOTTOM - 5 * mm)
        canvas.setFont(self.font, 8.5)
        canvas.setFillColor(HEAD)
        canvas.drawCentredString(width / 2, MARGIN_BOTTOM - 10 * mm,
                                 f"第 {page} 页 / 共 {pages} 页   Page {page} of {pages}")
        canvas.setFillColor(RULE)
        canvas.drawString(MARGIN_X, MARGIN_BOTTOM - 10 * mm, f"PumpWatch · {self.site.zh} · {self.month}")
        canvas.restoreState()


def _numbered(page: _Page) -> Callable[..., Canvas]:
    """A canvas class that holds its pages until the end, so each footer can say how many there are."""

    class NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 - reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()  # type: ignore[attr-defined]  # reportlab's own reset, not in the stubs

        def save(self) -> None:
            total = len(self._pages)
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                page.footer(self, number, total)
                super().showPage()
            super().save()

    return NumberedCanvas


def _facts(report: dict[str, Any], styles: dict[str, ParagraphStyle]) -> Table:
    status = names.STATUS["closed" if report.get("status") == "closed" else "preview"]
    closed_by = names.CLOSED_BY.get(str(report.get("closed_by")))
    zone = _zone(report)
    rows = [
        ["报告月份 Month", report["month"], "状态 Status", f"{status.zh} {status.en}"],
        ["数据截至 Figures as of", _local(report.get("as_of"), zone), "截止 Due by",
         _local(report.get("due_by"), zone)],
        ["生成 Built", _local(report.get("built_at"), zone), "定稿 Closed",
         _local(report.get("closed_at"), zone) + (f" ({closed_by.zh} {closed_by.en})" if closed_by else "")],
        ["时区 Time zone", zone.key, "", ""],
    ]
    data = [[Paragraph(_esc(c), styles["cell"]) for c in row] for row in rows]
    table = Table(data, colWidths=[38 * mm, 50 * mm, 28 * mm, 58 * mm])
    table.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), styles["base"].fontName),
                               ("GRID", (0, 0), (-1, -1), 0.4, RULE),
                               ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#e4e8ee")),
                               ("BACKGROUND", (2, 0), (2, -1), colors.HexColor("#e4e8ee"))]))
    return table


def _tasks(report: dict[str, Any], styles: dict[str, ParagraphStyle]) -> list[Flowable]:
    keys = list(names.COUNTS)
    rows: list[list[object]] = [[names.both(names.kind_name(kind))] + [counts.get(k, 0) for k in keys]
                                for kind, counts in (report.get("tasks_by_kind") or {}).items()]
    if rows:
        totals = report.get("totals") or {}
        rows.append(["合计 Total"] + [totals.get(k, 0) for k in keys])
    header = ["类型 Kind"] + [names.both(names.COUNTS[k]) for k in keys]
    widths = [30 * mm] + [144 * mm / len(keys)] * len(keys)  # "Completed" fits its column
    return [_table(styles, header, rows, widths, total=True)]


def _sla(report: dict[str, Any], styles: dict[str, ParagraphStyle]) -> Table:
    keys = list(names.SLA_FIELDS)
    rows = []
    for clock, label in names.CLOCKS.items():
        row = (report.get("sla") or {}).get(clock, {})
        rows.append([names.both(label)] + [_share(row.get(k)) if k == "attainment" else _num(row.get(k))
                                           for k in keys])
    return _table(styles, ["时限 Clock"] + [names.both(names.SLA_FIELDS[k]) for k in keys], rows,
                  [36 * mm] + [138 * mm / len(keys)] * len(keys))


def _repeats(report: dict[str, Any], styles: dict[str, ParagraphStyle]) -> Table:
    rows = [[r["asset"], r["faults"], r["repeats"], r["alarm_repeats"], r["fault_reports"]]
            for r in report.get("repeat_faults") or []]
    return _table(styles, ["设备 Asset", "故障次数 Faults", "重复 Repeats", "报警重复 Alarm repeats",
                           "报修 Fault reports"], rows, [54 * mm, 30 * mm, 30 * mm, 30 * mm, 30 * mm])


def _rotation(report: dict[str, Any], styles: dict[str, ParagraphStyle]) -> Table:
    figures = report.get("rotation") or {}
    keys = list(names.ROTATION)
    row = [_share(figures.get(k)) if k == "compliance" else _num(figures.get(k)) for k in keys]
    return _table(styles, [names.both(names.ROTATION[k]) for k in keys], [row],
                  [174 * mm / len(keys)] * len(keys))


def _parts(report: dict[str, Any], styles: dict[str, ParagraphStyle]) -> Table:
    rows = [[p["part"], p["unit"], _num(p["quantity"])] for p in report.get("parts_used") or []]
    return _table(styles, ["备件 Part", "单位 Unit", "数量 Quantity"], rows, [110 * mm, 30 * mm, 34 * mm])


def _amendments(report: dict[str, Any], styles: dict[str, ParagraphStyle]) -> Table:
    zone = _zone(report)
    rows = [[_local(a["happened_at"], zone), f"#{a['task_id']}",
             Paragraph(f"{_esc(a['what']['zh'])}<br/>{_esc(a['what']['en'])}", styles["cell"]),
             a.get("why") or "", a["counted_in"]] for a in report.get("amendments") or []]
    return _table(styles, ["时间 When", "任务 Task", "更正 What changed", "原因 Why", "计入 Counted in"],
                  rows, [28 * mm, 16 * mm, 74 * mm, 36 * mm, 20 * mm])


def _signatures(report: dict[str, Any], styles: dict[str, ParagraphStyle]) -> Table:
    signed = report.get("signatures") or {}

    def line(key: str, title: Text, role: Text) -> list[object]:
        found = signed.get(key)
        who = found["name"] if found else ""  # the rule below is where a hand signature goes
        at = _local(found["at"], _zone(report))[:10] if found else "__________"
        return [Paragraph(f"{title.zh} {title.en}", styles["base"]),
                Paragraph(f"{role.zh}<br/>{role.en}", styles["note"]),
                Paragraph(_esc(who), styles["base"]), Paragraph(f"日期 Date: {_esc(at)}", styles["base"])]

    table = Table([line("prepared", names.PREPARED, names.PREPARER_ROLE),
                   line("approved", names.APPROVED, names.APPROVER_ROLE)],
                  colWidths=[30 * mm, 42 * mm, 60 * mm, 42 * mm], rowHeights=[16 * mm, 16 * mm])
    table.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), styles["base"].fontName),
                               ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
                               ("LINEBELOW", (2, 0), (2, -1), 0.6, HEAD)]))
    return table


def to_pdf(report: dict[str, Any]) -> bytes:
    """The report (as `maintenance.reports.document.assemble` makes it) as a printable PDF."""
    font = register()
    styles = _styles(font)
    page = _Page(report, font)
    out = io.BytesIO()
    site = page.site
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=MARGIN_X, rightMargin=MARGIN_X, topMargin=MARGIN_TOP,
                            bottomMargin=MARGIN_BOTTOM, invariant=1, initialFontName=font,
                            title=f"{site.zh} {names.TITLE.zh} {report['month']}",
                            author="PumpWatch", subject=f"{site.en} {names.TITLE.en} {report['month']}",
                            lang="zh-CN")
    status = names.STATUS["closed" if report.get("status") == "closed" else "preview"]

    def section(title: str, *body: Flowable) -> Flowable:
        return KeepTogether([Paragraph(title, styles["h2"]), *body])

    story: list[Flowable] = [
        Paragraph(f"{_esc(site.zh)} {names.TITLE.zh}", styles["title"]),
        Paragraph(f"{_esc(site.en)} · {names.TITLE.en} · {report['month']} · {status.zh} {status.en}",
                  styles["subtitle"]),
        Spacer(1, 4 * mm), _facts(report, styles),
        section("一、任务概况 Tasks", charts.tasks_by_state(report, font), Spacer(1, 2 * mm),
                *_tasks(report, styles)),
        Spacer(1, 1.5 * mm),
        Paragraph("计数为本月内发生的事件；月后的变化计入发生当月，并列于更正记录。Counts are events of the "
                  "month; later changes count in the month they happen and are listed as amendments.",
                  styles["note"]),
        section("二、响应与处理时效 Response and resolution", charts.sla_attainment(report, font),
                _sla(report, styles)),
        section("三、重复故障 Repeat faults", charts.repeat_faults(report, font), Spacer(1, 2 * mm),
                _repeats(report, styles)),
        section("四、主备泵轮换 Duty rotation", charts.rotation(report, font), _rotation(report, styles)),
        section("五、备件使用 Parts used", _parts(report, styles)),
        section("六、更正记录 Amendments", _amendments(report, styles)),
        section("七、签字 Signatures", _signatures(report, styles)),
    ]
    doc.build(story, onFirstPage=page.header, onLaterPages=page.header, canvasmaker=_numbered(page))
    return out.getvalue()

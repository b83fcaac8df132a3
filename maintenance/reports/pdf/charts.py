"""The report's charts as reportlab drawings: tasks by kind and state, SLA, repeat faults, rotation.

Each chart has a caption in both languages and labels in the embedded CJK font; an empty chart says so
instead of drawing empty axes.
"""

from __future__ import annotations

from typing import Any

from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors

from maintenance.reports import names

WIDTH = 480  # points: the text width of A4 with 18 mm margins, less a little
INK = colors.HexColor("#222222")
GRID = colors.HexColor("#d0d4da")
STATE_COLOURS = {"open": colors.HexColor("#e0a030"), "done": colors.HexColor("#5b9bd5"),
                 "verified": colors.HexColor("#3c8c5a"), "cancelled": colors.HexColor("#a0a4aa")}
RESPONSE, RESOLUTION = colors.HexColor("#5b9bd5"), colors.HexColor("#3c8c5a")
REPEATS = colors.HexColor("#c0504d")


def _frame(height: float, font: str, caption: str) -> Drawing:
    drawing = Drawing(WIDTH, height, initialFontName=font)  # else the renderer selects Helvetica first
    drawing.add(String(0, height - 12, caption, fontName=font, fontSize=10, fillColor=INK))
    return drawing


def _empty(caption: str, font: str, text: str = "本月无数据 No data this month") -> Drawing:
    """The caption and a line saying there is nothing to draw (no empty axes, no blank half page)."""
    small = _frame(36, font, caption)
    small.add(String(WIDTH / 2, 6, text, fontName=font, fontSize=9, fillColor=colors.grey,
                     textAnchor="middle"))
    return small


def _axes(chart: Any, font: str, categories: list[str], top: float | None = None,
          step: float | None = None) -> None:
    chart.categoryAxis.categoryNames = categories
    chart.categoryAxis.labels.fontName = font
    chart.categoryAxis.labels.fontSize = 8
    chart.categoryAxis.strokeColor = INK
    chart.valueAxis.labels.fontName = font
    chart.valueAxis.labels.fontSize = 8
    chart.valueAxis.valueMin = 0
    chart.valueAxis.strokeColor = INK
    chart.valueAxis.visibleGrid = True
    chart.valueAxis.gridStrokeColor = GRID
    if top is not None:
        chart.valueAxis.valueMax = top
    if step is not None:
        chart.valueAxis.valueStep = step


def _whole_steps(highest: float) -> tuple[float, float]:
    """An axis top and step for counts: whole numbers, about five gridlines."""
    top = max(1.0, float(highest))
    step = max(1.0, float(int(top / 5) or 1))
    return (int(top / step) + 1) * step, step


def _legend(drawing: Drawing, font: str, x: int, y: int, items: list[tuple[Any, str]]) -> None:
    legend = Legend()
    legend.x, legend.y = x, y
    legend.fontName, legend.fontSize = font, 8
    legend.alignment = "right"
    legend.columnMaximum = len(items)
    legend.dx = legend.dy = 8
    legend.deltay = 12
    legend.colorNamePairs = items
    drawing.add(legend)


def tasks_by_state(report: dict[str, Any], font: str) -> Drawing:
    """Tasks raised in the month per kind, stacked by their state when the month ended."""
    caption = "任务（按类型与月末状态）Tasks by kind and state at month end"
    drawing = _frame(200, font, caption)
    states = report.get("states_at_end") or {}
    kinds = [k for k, row in states.items() if sum(row.values())]
    if not kinds:
        return _empty(caption, font)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 36, 28, WIDTH - 170, 140
    chart.data = [[states[k].get(s, 0) for k in kinds] for s in names.END_STATES]
    chart.categoryAxis.style = "stacked"
    chart.barWidth = 14
    top, step = _whole_steps(max(sum(states[k].values()) for k in kinds))
    _axes(chart, font, [names.kind_name(k).zh for k in kinds], top, step)
    for i, state in enumerate(names.END_STATES):
        chart.bars[i].fillColor = STATE_COLOURS[state]
        chart.bars[i].strokeColor = None
    drawing.add(chart)
    _legend(drawing, font, WIDTH - 120, 160,
            [(STATE_COLOURS[s], names.both(t)) for s, t in names.END_STATES.items()])
    return drawing


def sla_attainment(report: dict[str, Any], font: str) -> Drawing:
    """Share of deadlines met, response beside resolution, in percent."""
    caption = "时效达标率 SLA attainment (%)"
    drawing = _frame(150, font, caption)
    sla = report.get("sla") or {}
    clocks = list(reversed(names.CLOCKS))  # a horizontal chart draws its first category at the bottom
    shares = [sla.get(c, {}).get("attainment") for c in clocks]
    if all(s is None for s in shares):
        return _empty(caption, font, "本月无到期考核 No deadlines decided this month")
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 110, 20, WIDTH - 180, 100
    chart.data = [[round((s or 0.0) * 100, 1) for s in shares]]
    chart.barWidth = 20
    _axes(chart, font, [names.both(names.CLOCKS[c]) for c in clocks], 100, 20)
    chart.bars[0].strokeColor = None
    for i, clock in enumerate(clocks):
        chart.bars[(0, i)].fillColor = RESPONSE if clock == "response" else RESOLUTION
    chart.barLabels.fontName, chart.barLabels.fontSize = font, 8
    chart.barLabelFormat = "%.1f%%"
    chart.barLabels.nudge = 14
    drawing.add(chart)
    for i, clock in enumerate(clocks):  # met of decided, beside each bar
        row = sla.get(clock, {})
        drawing.add(String(WIDTH - 60, 20 + 100 * (i + 0.5) / 2 - 3,
                           f"{row.get('met', 0)}/{row.get('decided', 0)} 达标 met", fontName=font, fontSize=8,
                           fillColor=INK))
    return drawing


def repeat_faults(report: dict[str, Any], font: str, limit: int = 10) -> Drawing:
    """Repeat faults per asset (the most first), alarm repeats and hand-reported faults together."""
    rows = list(report.get("repeat_faults") or [])[:limit]
    height = 60 + 18 * max(len(rows), 2)
    caption = "重复故障（按设备）Repeat faults per asset"
    drawing = _frame(height, font, caption)
    if not rows:
        return _empty(caption, font, "本月无重复故障 No repeat faults this month")
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 120, 20, WIDTH - 160, int(height - 50)
    chart.data = [[r["repeats"] for r in reversed(rows)]]
    top, step = _whole_steps(max(r["repeats"] for r in rows))
    _axes(chart, font, [str(r["asset"])[:24] for r in reversed(rows)], top, step)
    chart.bars[0].fillColor, chart.bars[0].strokeColor = REPEATS, None
    chart.barLabels.fontName, chart.barLabels.fontSize = font, 8
    chart.barLabelFormat = "%d"
    chart.barLabels.nudge = 8
    drawing.add(chart)
    return drawing


def rotation(report: dict[str, Any], font: str) -> Drawing:
    """Duty rotations of the month: planned, confirmed, on time, verified, failed."""
    caption = "主备泵轮换 Duty rotation"
    drawing = _frame(170, font, caption)
    figures = report.get("rotation") or {}
    keys = ["planned", "confirmed", "on_time", "verified", "failed"]
    if not figures.get("planned"):
        return _empty(caption, font, "本月无轮换计划 No rotations planned this month")
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 36, 28, WIDTH - 170, 110
    chart.data = [[figures.get(k, 0) for k in keys]]
    chart.barWidth = 22
    top, step = _whole_steps(max(figures.get(k, 0) for k in keys))
    _axes(chart, font, [names.ROTATION[k].zh for k in keys], top, step)
    chart.bars[0].strokeColor = None
    palette = [colors.HexColor("#8a94a6"), RESPONSE, RESOLUTION, colors.HexColor("#2f6f46"), REPEATS]
    for i, colour in enumerate(palette):
        chart.bars[(0, i)].fillColor = colour
    chart.barLabels.fontName, chart.barLabels.fontSize = font, 8
    chart.barLabelFormat = "%d"
    chart.barLabels.nudge = 7
    drawing.add(chart)
    share = figures.get("compliance")
    text = "—" if share is None else f"{share * 100:.1f}%"
    drawing.add(String(WIDTH - 120, 100, "合规率 Compliance", fontName=font, fontSize=9, fillColor=INK))
    drawing.add(String(WIDTH - 120, 76, text, fontName=font, fontSize=20, fillColor=RESOLUTION))
    return drawing

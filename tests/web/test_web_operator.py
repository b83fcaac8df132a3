"""The operator's whole job in Chromium against `pumpwatch demo`: the pump-room mimic, the alarm console
(flash, sound, tab title, alarm detail with acknowledgement comments), values coloured by the thresholds
in force before their alarm fires, readable trend charts (hover, zoom, thresholds, day, CSV), in Chinese and
English, desktop and phone; axe-core finds no serious accessibility violation on these pages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, Route, expect

from tests.web.axe import serious_violations, until
from tests.web.harness import Accounts, Browsers, Demo

pytestmark = pytest.mark.e2e

Shot = Callable[[Page, str], Path]
CJK = re.compile(r"[\u3400-\u9fff]")


def board(browsers: Browsers, phone: bool = False, path: str = "/#/board") -> Page:
    page = browsers.page("operator", phone=phone, path=path)
    expect(page.locator("#live-status")).to_have_attribute("data-live", "live")
    return page


def leak_alarm(accounts: Accounts) -> dict[str, Any] | None:
    alarms = accounts.api("operator").get("/api/alarms", params={"asset": "dom-ptank"}).json()["data"]
    return next((a for a in alarms if a["alarm_type"] == "leak"), None)


def test_the_board_draws_each_room_as_a_mimic_with_live_values(browsers: Browsers, screenshot: Shot) -> None:
    page = board(browsers)
    mimic = page.locator('svg.mimic[data-mimic="dom"]')
    expect(mimic).to_be_visible()
    expect(page.locator('svg.mimic[data-mimic="fire"]')).to_be_visible()
    pressure = mimic.locator('[data-sensor="dom-header-pressure"]')
    expect(pressure).to_have_attribute("data-state", "ok")
    expect(pressure.locator(".unit")).to_have_text("MPa")
    expect(pressure.locator(".num")).to_have_text(re.compile(r"^0[.,]\d{3}$"))
    pumps = mimic.locator("[data-mimic-pump]")
    duties = "els => els.map((e) => e.dataset.duty)"
    until(lambda: sorted(pumps.evaluate_all(duties)) == ["duty", "standby"], 15, "a duty and a standby pump")
    assert set(pumps.evaluate_all("els => els.map((e) => e.dataset.run)")) <= {"running", "stopped"}
    level = mimic.locator('[data-fill="dom-tank-level"]')
    until(lambda: float(level.get_attribute("height") or 0) > 10, 10, "the break tank filled to its level")
    expect(page.locator('[data-room="dom"]')).to_have_attribute("data-trouble", "ok")
    expect(page.locator(".alarms-panel")).to_have_attribute("data-count", "0")  # no red bar with no alarm
    assert serious_violations(page) == []
    screenshot(page, "board-mimic-desktop")

    # The cards are the second view, remembered on the device.
    page.click('[data-view="cards"]')
    expect(page.locator('[data-room="dom"] .room-cards')).to_be_visible()
    expect(page.locator('[data-pump="dom-p1"] .pump-switch_position .num')).to_have_text("自动")
    page.reload()
    expect(page.locator('[data-view="cards"]')).to_have_attribute("aria-pressed", "true")
    assert serious_violations(page) == []
    page.click('[data-view="mimic"]')
    expect(page.locator('svg.mimic[data-mimic="dom"]')).to_be_visible()

    phone = board(browsers, phone=True)
    drawing = phone.locator('svg.mimic[data-mimic="dom"]')
    expect(drawing.locator('[data-sensor="dom-header-pressure"]')).to_have_attribute("data-state", "ok")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    label_px = drawing.locator(".mm-label").first.evaluate("e => e.getBoundingClientRect().height")
    assert label_px >= 11, label_px  # names stay legible scaled down to the phone
    expect(phone.locator("#bottom-nav")).to_be_visible()
    expect(phone.locator(".nav")).to_be_hidden()
    assert serious_violations(phone) == []
    screenshot(phone, "board-mimic-phone")


def test_a_critical_alarm_flashes_sounds_counts_in_the_title_and_is_told_in_full(
        browsers: Browsers, demo: Demo, accounts: Accounts, screenshot: Shot) -> None:
    page = board(browsers)
    expect(page.locator("#alarm-mute")).to_have_attribute("aria-pressed", "false")
    expect(page.locator(".alarms-panel")).to_have_attribute("data-count", "0")
    demo.scenario("flange_leak", True)
    row = page.locator('tr[data-asset="dom-ptank"][data-alarm-type="leak"]')
    expect(row).to_be_visible(timeout=30_000)
    expect(row).to_have_class(re.compile(r"\bis-flashing\b"))
    expect(page.locator("body")).to_have_attribute("data-unacked-critical", "1")
    assert page.title().startswith("(1) ")
    # It arrived while the board was watched: it sounded.
    expect(page.locator("body")).to_have_attribute("data-beeps", re.compile(r"[1-9]"))
    room = page.locator('[data-room="dom"]')
    expect(room).to_have_attribute("data-trouble", "alarm")
    expect(room).to_have_class(re.compile(r"\bis-flashing\b"))
    expect(room.locator(".room-banner")).to_contain_text("1 条报警")
    expect(room.locator('[data-equipment="dom-ptank"]')).to_have_attribute("data-alarm", "alarm")
    expect(room.locator('.mm-drop[data-sensor="dom-flange-leak"]')).to_have_attribute("data-state", "alarm")
    expect(page.locator('[data-room="fire"]')).to_have_attribute("data-trouble", "ok")
    page.click("#alarm-mute")
    expect(page.locator("#alarm-mute")).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("localStorage.getItem('pumpwatch.mute')") == "1"
    assert serious_violations(page) == []
    screenshot(page, "board-mimic-alarm-desktop")

    row.locator("a.alarm-link").click()
    detail = page.locator(".alarm-detail")
    expect(detail).to_have_attribute("data-state", "active")
    alarm_id = detail.get_attribute("data-alarm-id")
    expect(detail.locator('[data-fact="started"]')).to_be_visible()
    expect(detail.locator('[data-fact="peak"]')).to_have_text("1")
    expect(detail.locator('[data-fact="duration"]')).to_contain_text("仍在持续")
    expect(detail.locator("[data-task-link]")).to_contain_text("任务 #")
    page.fill("#ack-comment", "已通知维修，关闭气压罐进水阀")
    page.click(".ack-form button[type=submit]")
    expect(detail.locator('[data-fact="acked"]')).to_contain_text("已确认")
    expect(detail.locator("[data-comment]")).to_contain_text("已通知维修")
    expect(page.locator('.alarm-history tr[data-action="acknowledged"]')).to_contain_text("已通知维修")
    history = accounts.api("operator").get(f"/api/alarms/{alarm_id}/history").json()["data"]
    assert [e["action"] for e in history][:1] == ["raised"]
    assert any(e["action"] == "acknowledged" and e["after"]["comment"] == "已通知维修，关闭气压罐进水阀"
               for e in history)
    assert serious_violations(page) == []
    screenshot(page, "alarm-detail-desktop")

    page.goto(f"{demo.url}/#/board")
    expect(row).to_have_class(re.compile(r"\bis-acked\b"))
    expect(row).not_to_have_class(re.compile(r"\bis-flashing\b"))
    expect(page.locator("body")).to_have_attribute("data-unacked-critical", "0")
    assert not page.title().startswith("(")

    demo.scenario("flange_leak", False)  # repaired: the record keeps its start, peak, end and duration
    until(lambda: (a := leak_alarm(accounts)) is not None and a["state"] == "cleared", 30, "the leak cleared")
    page.goto(f"{demo.url}/#/alarm/{alarm_id}")
    expect(detail).to_have_attribute("data-state", "cleared")
    expect(detail.locator('[data-fact="ended"]')).to_be_visible()
    expect(detail.locator('[data-fact="duration"]')).not_to_contain_text("仍在持续")
    expect(detail.locator('[data-fact="severity"]')).to_contain_text("紧急")


def test_values_beyond_a_threshold_are_coloured_before_their_alarm(browsers: Browsers, accounts: Accounts,
                                                                   screenshot: Shot) -> None:
    sensors = {s["id"]: s for s in accounts.api("operator").get("/api/sensors").json()["data"]}
    pressure = sensors["dom-header-pressure"]
    assert {"when": "below", "value": 0.12, "severity": "critical", "hysteresis": 0.02,
            "for_seconds": 20.0} in pressure["thresholds"]
    assert pressure["threshold_source"] == "sensor"
    assert sensors["dom-p1-current"]["threshold_source"] == "default"  # 110 % of rated current
    assert sensors["dom-p1-current"]["thresholds"][0]["value"] == pytest.approx(15.6 * 1.1)

    # A site whose room temperature limit is 5 °C, 5 minutes: 23 °C is beyond it now, the alarm comes later.
    context = browsers.context("operator")

    def lower_limit(route: Route) -> None:
        body = route.fetch().json()
        for sensor in body["data"]:
            if sensor["id"] == "dom-room-temp":
                sensor["thresholds"] = [{"when": "above", "value": 5.0, "severity": "critical",
                                         "hysteresis": 1, "for_seconds": 300}]
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    context.route("**/api/sensors", lower_limit)
    page = context.new_page()
    page.on("pageerror", lambda err: browsers.errors.append(str(err)))
    page.goto(f"{browsers.demo.url}/#/board")
    drawn = page.locator('svg.mimic [data-sensor="dom-room-temp"]')
    expect(drawn).to_have_attribute("data-state", "alarm")
    expect(drawn).to_have_attribute("data-pending", "true")
    page.click('[data-view="cards"]')
    row = page.locator('.sensor[data-sensor="dom-room-temp"]')
    expect(row).to_have_attribute("data-state", "alarm")
    expect(row.locator(".sensor-chip")).to_have_text("超限，报警待触发")
    expect(page.locator('.sensor[data-sensor="fire-room-temp"]')).to_have_attribute("data-state", "ok")
    screenshot(page, "board-limit-pending-desktop")
    page.click('[data-view="mimic"]')


def test_trends_read_by_hover_zoom_into_a_drag_show_limits_and_export_what_is_shown(
        browsers: Browsers, screenshot: Shot) -> None:
    page = board(browsers, path="/#/room/dom")
    charts = page.locator(".charts")
    expect(charts).to_have_attribute("data-loaded", "1h")
    kinds = page.locator(".chart-card").evaluate_all("els => els.map((e) => e.dataset.kind)")
    assert kinds[:2] == ["pressure", "level"], kinds  # the room's key sensors first
    assert kinds.index("current") < kinds.index("temperature")
    expect(page.locator(".range-note")).to_contain_text("每点为 15 秒的平均值")
    chart = page.locator('[data-chart="dom-header-pressure"] svg.chart')
    expect(chart.locator(".axis-unit")).to_have_text("MPa")
    assert chart.locator("line.limit").count() >= 1  # 0.25 MPa below, 0.70 above
    tick = chart.locator(".tick").first
    assert tick.evaluate("e => parseFloat(getComputedStyle(e).fontSize)") >= 12
    assert tick.evaluate("e => e.getBoundingClientRect().height") >= 11  # drawn at its real size

    page.click('[data-range="7d"]')
    expect(charts).to_have_attribute("data-loaded", "7d")
    expect(page.locator(".range-note")).to_contain_text("每点为 42 分钟的平均值")
    until(lambda: int(chart.get_attribute("data-points") or 0) > 100, 10, "a week of backfilled history")
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    expect(chart.locator(".tip")).to_have_attribute("visibility", "visible")
    expect(chart.locator(".tip-value")).to_contain_text("MPa")
    screenshot(page, "room-trends-hover-desktop")

    week_start = float(chart.get_attribute("data-start") or 0)
    chart.scroll_into_view_if_needed()  # the full-page screenshot may have moved the page
    box = chart.bounding_box()
    assert box is not None
    with page.expect_request(re.compile(r"/api/sensors/dom-header-pressure/history\?")) as request:
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5, steps=5)
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5, steps=5)
        page.mouse.up()
    query = dict(p.split("=") for p in request.value.url.split("?", 1)[1].split("&"))
    assert float(query["start"]) > week_start
    assert float(query["end"]) - float(query["start"]) < 7 * 86400 * 0.4
    expect(charts).to_have_attribute("data-loaded", "zoom")
    expect(page.locator(".range-note")).to_contain_text("显示")
    page.click('[data-action="unzoom"]')
    expect(charts).to_have_attribute("data-loaded", "7d")

    today = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d")
    page.fill("#trend-day-dom", today)
    expect(charts).to_have_attribute("data-loaded", "zoom")
    with page.expect_download() as download:
        page.click('[data-action="csv"]')
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    lines = text.strip().splitlines()
    assert lines[0] == "时间,传感器,传感器编号,平均值,最小值,最大值,读数个数,单位"
    rows = [line for line in lines[1:] if ",dom-header-pressure," in line]
    assert rows
    assert rows[0].startswith(today)
    safe = page.evaluate("""() => import('/static/chart.js').then((m) => [
        m.safeCell('=HYPERLINK("x")'), m.safeCell('+1'), m.safeCell('-2'), m.safeCell('@a'),
        m.safeCell('\\tq'), m.safeCell('\\rq'), m.safeCell(-0.5), m.safeCell('泵')])""")
    assert safe == ["\"'=HYPERLINK(\"\"x\"\")\"", "'+1", "'-2", "'@a", "'\tq", "\"'\rq\"", "-0.5", "泵"]
    assert serious_violations(page) == []
    screenshot(page, "room-trends-day-desktop")

    phone = board(browsers, phone=True, path="/#/room/dom")
    expect(phone.locator(".charts")).to_have_attribute("data-loaded", "1h")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    small = phone.locator('[data-chart="dom-header-pressure"] .tick').first
    assert small.evaluate("e => e.getBoundingClientRect().height") >= 11
    screenshot(phone, "room-trends-phone")


def test_the_operator_reads_everything_in_english_and_chinese_without_ids(
        browsers: Browsers, demo: Demo, accounts: Accounts, screenshot: Shot) -> None:
    page = board(browsers)
    page.click("#lang-toggle")
    expect(page.locator("#page-title")).to_have_text("Operator board")
    expect(page.locator('svg.mimic[data-mimic="dom"]')).to_contain_text("Break tank")
    expect(page.locator('[data-view="mimic"]')).to_have_text("Mimic")
    status = page.locator('[data-room="dom"] .room-alarms')
    until(lambda: status.inner_text().strip() != "", 10, "room status")
    main = page.locator("#main").inner_text()
    assert not CJK.search(main), CJK.findall(main)[:20]
    assert serious_violations(page) == []
    screenshot(page, "board-mimic-english-desktop")
    page.click("#lang-toggle")
    expect(page.locator("#page-title")).to_have_text("监控看板")

    # An alarm's task is told by its equipment and alarm type, never "dom-ptank/leak".
    alarm = leak_alarm(accounts)
    if alarm is None:
        demo.scenario("flange_leak", True)
        alarm = until(lambda: leak_alarm(accounts), 30, "the flange leak alarm")
        demo.scenario("flange_leak", False)
    path = f"/api/alarms/{alarm['id']}/task"
    task = until(lambda: accounts.api("operator").get(path).json(), 10, "its task")
    assert task["description"] == "dom-ptank/leak"
    page.goto(f"{demo.url}/#/task/{task['id']}")
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("气压罐：漏水")
    assert "dom-ptank" not in page.locator("#main").inner_text()

    # A refusal of the server in the user's language, its own words kept on a second line.
    page.goto(f"{demo.url}/#/alarm/999999")
    error = page.locator("#main .error")
    expect(error).to_contain_text("找不到该记录")
    expect(error).to_contain_text("服务器说明：")
    screenshot(page, "error-in-chinese-desktop")

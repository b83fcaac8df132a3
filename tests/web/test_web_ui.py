"""The web UI end to end in headless Chromium against `pumpwatch demo` (real Mosquitto and InfluxDB).

Desktop pages for the operator, supervisor and director; the technician's app on a 390x844 phone, with
the network switched off mid-shift. Screenshots of the main pages go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import re
import struct
import time
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import segno
from playwright.sync_api import FilePayload, Locator, Page, Route, expect

from maintenance.db import make_engine, session_factory
from maintenance.models import Task
from maintenance.task_flow import ChecklistItem
from maintenance.tasks import TaskService
from maintenance.vocab import Priority, TaskKind
from pumpwatch.clock import SystemClock
from pumpwatch.site import Text
from tests.web.harness import Accounts, Browsers, Demo

# The browser against `pumpwatch demo` as its own process (about 55 s for the module).
pytestmark = pytest.mark.e2e

Shot = Callable[[Page, str], Path]


def _png(width: int, height: int) -> bytes:
    """A real PNG (a colour gradient), as a phone camera would hand over a (much larger) photo."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in (x * 4 % 256, y * 5 % 256, 120))
                    for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


PHOTO = _png(64, 48)
EXTRA_PROBES = {"approvals": ["/api/access-requests"], "plans": ["/api/plans"], "calendar": ["/api/calendar"],
                "reports": ["/api/reports", "/api/reports/monthly/{month}"]}


def until(check: Callable[[], Any], within: float, what: str = "condition") -> Any:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not reached in {within} s (last: {result!r})"
        time.sleep(0.25)


@pytest.fixture(scope="module")
def shared() -> dict[str, int]:
    """Tasks one test leaves for a later one (each test makes its own when run alone)."""
    return {}


def photo(name: str = "photo.png") -> FilePayload:
    return {"name": name, "mimeType": "image/png", "buffer": PHOTO}


def sign(page: Page, canvas: Locator) -> None:
    """Draw a signature with the pointer, once the pad has stopped moving.

    An item saved just before folds when its save is through, which moves the items below it: a stroke
    aimed at where the pad was a moment ago lands beside it.
    """
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    for _ in range(50):
        page.wait_for_timeout(100)
        again = canvas.bounding_box()
        if again == box:
            break
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
    assert box is not None
    x, y = box["x"] + 20, box["y"] + box["height"] * 0.6
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 12):
        page.mouse.move(x + i * 18, y - (10 if i % 2 else -8))
    page.mouse.up()
    expect(canvas.locator("xpath=..")).to_have_attribute("data-signed", "true")


def unlabelled_controls(page: Page) -> list[str]:
    """Form controls on the page that have no label a screen reader could announce."""
    result: list[str] = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter((e) => e.type !== 'hidden' && !e.closest('[hidden]'))
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                       && !e.getAttribute('aria-labelledby'))
        .map((e) => e.id || e.name || e.outerHTML.slice(0, 80))""")
    return result


def assign(accounts: Accounts, task_id: int, username: str) -> None:
    resp = accounts.api("supervisor").post(f"/api/tasks/{task_id}/assign",
                                           json={"assignees": [accounts.user_id(username)]})
    assert resp.status_code == 200, resp.text


def fault_task(accounts: Accounts, asset: str, room: str, text: str) -> int:
    """A fault reported by the operator through the API."""
    resp = accounts.api("operator").post("/api/tasks", json={
        "title": {"zh": f"报修：{text}", "en": f"Fault: {text}"}, "asset": asset, "room": room,
        "description": text})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def done_task(accounts: Accounts) -> int:
    """A task a technician finished through the API (for a supervisor test run on its own)."""
    task_id = fault_task(accounts, "fire-sewage", "fire", "排污泵异响 sewage pump noise")
    assign(accounts, task_id, "tech")
    tech = accounts.api("tech")
    assert tech.post(f"/api/tasks/{task_id}/start").status_code == 200
    resp = tech.post(f"/api/tasks/{task_id}/complete",
                     json={"fault_cause": "叶轮缠绕杂物", "action_taken": "清理叶轮"})
    assert resp.status_code == 200, resp.text
    return task_id


ROUND_ITEMS: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "gauge": ({"zh": "出水压力表读数", "en": "Outlet pressure gauge reading"},
              {"type": "number", "min": 0.3, "max": 0.5, "unit": "MPa"}),
    "noise": ({"zh": "水泵运行无异响", "en": "Pumps run without unusual noise"}, {"type": "pass_fail"}),
    "leak": ({"zh": "法兰无渗漏（拍照）", "en": "No flange leaks (photo)"}, {"type": "photo"}),
    "log": ({"zh": "运行记录", "en": "Log entry"}, {"type": "text"}),
    "sign": ({"zh": "值班员签认", "en": "Operator's sign-off"}, {"type": "signature"}),
}


def seed_daily_round(demo: Demo) -> int:
    """The domestic room's daily inspection round, as the scheduler creates it (create_from_plan).

    The checklist items carry how they are answered (`type`, `min`/`max`/`unit` for readings), which the UI
    renders as a reading with its expected range, pass/fail, photo, text or signature.
    """
    engine = make_engine(f"sqlite:///{demo.state_dir / 'pumpwatch.db'}")
    try:
        sessions = session_factory(engine)
        task = TaskService(sessions, SystemClock()).create_from_plan(
            f"web-round-{uuid.uuid4().hex[:8]}",
            Text(zh="日常巡检：生活水泵房", en="Daily round: domestic pump room"),
            kind=TaskKind.INSPECTION, priority=Priority.NORMAL, due_at=datetime.now(UTC) + timedelta(hours=2),
            asset="dom-p1", room="dom",
            checklist=[ChecklistItem(key, Text(**text)) for key, (text, _) in ROUND_ITEMS.items()])
        with sessions.begin() as session:
            row = session.get(Task, task.id)
            assert row is not None
            row.checklist = [item | ROUND_ITEMS[item["key"]][1] for item in row.checklist]
        return int(task.id)
    finally:
        engine.dispose()


def flange_alarm_task(demo: Demo, accounts: Accounts) -> dict[str, Any]:
    """The task of the flange-leak alarm (switching the scenario on if no earlier test did)."""
    api = accounts.api("operator")

    def active_leak() -> dict[str, Any] | None:
        alarms = api.get("/api/alarms", params={"asset": "dom-ptank", "state": "active"}).json()["data"]
        return next((a for a in alarms if a["alarm_type"] == "leak"), None)

    alarm = active_leak()
    if alarm is None:
        demo.scenario("flange_leak", True)
        alarm = until(active_leak, 30, "flange leak alarm")
    task: dict[str, Any] = until(lambda: api.get(f"/api/alarms/{alarm['id']}/task").json(), 10, "alarm task")
    return task


# --- serving ----------------------------------------------------------------------------------------


def test_the_ui_is_served_with_a_strict_policy_and_an_offline_shell(demo: Demo) -> None:
    with httpx.Client(base_url=demo.url, timeout=10) as client:
        index = client.get("/")
        assert index.status_code == 200
        assert index.headers["content-type"].startswith("text/html")
        csp = index.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'"
        assert directives["object-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe" not in csp
        scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", index.text, re.S)
        assert scripts
        # No inline script: every script is a file of this origin.
        assert all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
        assert not re.search(r"\son[a-z]+=", index.text)  # no inline event handlers
        assert client.head("/").status_code == 200

        worker = client.get("/sw.js")
        assert worker.headers["service-worker-allowed"] == "/"
        assert worker.headers["content-type"].startswith("text/javascript")
        found = re.search(r"const ASSETS = \['/', \.\.\.(\[.*?\])\];", worker.text)
        assert found, worker.text[:500]
        assets = json.loads(found.group(1))
        for needed in ("/static/app.js", "/static/style.css", "/static/manifest.webmanifest",
                       "/static/icons/icon.svg", "/static/outbox.js", "/static/store.js"):
            assert needed in assets
        for asset in assets:
            resp = client.get(asset)
            assert resp.status_code == 200, asset
            assert "content-security-policy" in resp.headers
        assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")

        manifest = client.get("/static/manifest.webmanifest")
        assert manifest.headers["content-type"].startswith("application/manifest+json")
        body = manifest.json()
        assert body["display"] == "standalone"
        assert body["start_url"].startswith("/")
        for icon in body["icons"]:
            assert client.get(icon["src"]).headers["content-type"] == "image/svg+xml"

        for bad in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2f..%2fpyproject.toml",
                    "/static/missing.js", "/static/"):
            assert client.get(bad).status_code == 404, bad

        label = client.get("/label/dom-p1", follow_redirects=False)
        assert label.status_code == 303
        assert label.headers["location"].startswith("/?next=%2Flabel%2Fdom-p1")


# --- signing in -------------------------------------------------------------------------------------

ROLES = [
    ("operator", False, "监控看板", {"board", "alarms", "report"}, {"verify", "tasks", "escalations"}),
    ("tech", True, "我的任务", {"tasks", "report", "alarms"}, {"board", "verify", "escalations"}),
    ("tech2", True, "我的任务", {"tasks", "report"}, {"board", "verify"}),
    ("supervisor", False, "任务审核", {"verify", "escalations", "board", "overview", "labels"}, {"tasks"}),
    ("director", False, "总览", {"overview", "escalations", "board", "alarms"}, {"verify", "tasks"}),
    ("admin", False, "监控看板", {"board", "verify", "tasks", "escalations"}, set()),
]


@pytest.mark.parametrize(("username", "phone", "title", "shown", "hidden"), ROLES, ids=[r[0] for r in ROLES])
def test_each_role_signs_in_and_lands_on_its_own_page(
        browsers: Browsers, accounts: Accounts, screenshot: Shot, username: str, phone: bool, title: str,
        shown: set[str], hidden: set[str]) -> None:
    page = browsers.page(phone=phone)
    expect(page.locator("#page-title")).to_have_text("登录")
    assert unlabelled_controls(page) == []
    if username == "operator":
        page.fill("#login-user", username)
        page.fill("#login-pass", "not-the-password")
        page.click("form.login button[type=submit]")
        expect(page.locator("#login-error")).to_have_text("用户名或密码不正确。")
    page.fill("#login-user", username)
    page.fill("#login-pass", f"{username}-demo-2026")
    page.click("form.login button[type=submit]")
    expect(page.locator("#page-title")).to_have_text(title)
    expect(page.locator("[data-user]")).to_have_attribute("data-user", username)
    accounts.keep(username, page.context)

    # Pages for API routes some servers lack: shown exactly when the route answers this user.
    expect(page.locator("body")).to_have_attribute("data-extras", re.compile(r".+"))
    api = accounts.api(username)
    month = datetime.now().strftime("%Y-%m")
    expected = {key for key, paths in EXTRA_PROBES.items()
                if any(api.get(p.format(month=month)).status_code in (200, 422) for p in paths)}
    nav = set(page.locator("[data-nav]").evaluate_all("els => els.map((e) => e.dataset.nav)"))
    assert shown <= nav, nav
    assert not hidden & nav, nav
    assert nav & set(EXTRA_PROBES) == expected

    expect(page.locator(".loading")).to_have_count(0)
    screenshot(page, f"landing-{username}-{'phone' if phone else 'desktop'}")
    if username == "admin":  # signing out ends the session on the server too
        page.click("#logout")
        expect(page.locator("#page-title")).to_have_text("登录")
        assert accounts.api("admin").get("/api/auth/me").status_code == 401
        accounts.cookies.pop("admin")
        accounts.clients.pop("admin").close()


def test_navigation_shows_pages_only_for_api_routes_that_exist(browsers: Browsers) -> None:
    context = browsers.context("supervisor")

    def plans(route: Route) -> None:
        plan = {"id": 7, "name": {"zh": "水泵月度保养", "en": "Monthly pump service"}, "every": "monthly"}
        route.fulfill(status=200, json={"data": [plan], "count": 1})

    def missing(route: Route) -> None:
        route.fulfill(status=404, content_type="application/problem+json", body='{"status": 404}')

    context.route("**/api/plans", plans)
    context.route("**/api/access-requests", missing)
    page = context.new_page()
    page.goto(browsers.demo.url + "/#/verify")
    expect(page.locator("body")).to_have_attribute("data-extras", re.compile(r"\bplans\b"))
    expect(page.locator('[data-nav="approvals"]')).to_have_count(0)
    page.click('[data-nav="plans"]')
    expect(page.locator("#page-title")).to_have_text("维保计划")
    expect(page.locator("table.generic")).to_contain_text("水泵月度保养")


# --- operator -----------------------------------------------------------------------------------------


def test_operator_sees_values_change_live_and_acknowledges_a_flange_leak(
        browsers: Browsers, demo: Demo, accounts: Accounts, screenshot: Shot) -> None:
    page = browsers.page("operator", path="/#/board")
    page.click('[data-view="cards"]')  # the cards view (the mimic is tested in test_web_operator.py)
    pressure = page.locator('[data-sensor="dom-header-pressure"]')
    expect(pressure).to_have_attribute("data-state", "ok")
    expect(page.locator("#live-status")).to_have_attribute("data-live", "live")
    expect(pressure.locator(".unit")).to_have_text("MPa")
    page.evaluate("window.sameDocument = true")

    # Live: the newest readings arrive without a reload.
    analog = ["dom-header-pressure", "dom-header-flow", "dom-tank-level", "dom-p1-current", "dom-p2-current",
              "dom-p1-temp", "fire-main-pressure"]

    def values() -> list[str]:
        return [page.locator(f'[data-sensor="{s}"] .num').first.inner_text() for s in analog]

    first_ts = pressure.get_attribute("data-ts")
    first = values()
    until(lambda: pressure.get_attribute("data-ts") != first_ts, 10, "a newer pressure reading")
    until(lambda: values() != first, 30, "a value changing on the board")
    pumps = page.locator('[data-pump="dom-p1"], [data-pump="dom-p2"]')
    duties = "els => els.map((e) => e.querySelector('.pump-duty').dataset.duty).sort().join(' ')"
    until(lambda: pumps.evaluate_all(duties) == "duty standby", 10, "one duty and one standby pump")
    expect(page.locator('[data-pump="dom-p1"] .pump-switch_position .num')).to_have_text("自动")

    demo.scenario("flange_leak", True)
    row = page.locator('tr[data-asset="dom-ptank"][data-alarm-type="leak"]')
    expect(row).to_be_visible(timeout=30_000)
    expect(row.locator(".chip")).to_have_text("紧急")
    expect(row.locator("time.age")).to_be_visible()
    leak = page.locator('[data-sensor="dom-flange-leak"]')
    expect(leak).to_have_attribute("data-state", "alarm")
    expect(leak.locator(".num")).to_have_text("漏水")
    expect(page.locator('[data-room-alarms="dom"]')).to_contain_text("报警")
    screenshot(page, "board-alarm-desktop")

    row.locator("button[data-ack]").click()
    expect(row).to_have_class(re.compile(r"\bis-acked\b"))
    expect(row.locator(".acked")).to_contain_text("已确认")
    alarm = accounts.api("operator").get(f"/api/alarms/{row.get_attribute('data-alarm-id')}").json()
    assert alarm["acknowledged_by"] == accounts.user_id("operator")
    assert page.evaluate("window.sameDocument") is True
    screenshot(page, "board-desktop")


def test_the_room_page_streams_trends_and_loads_history_by_range(browsers: Browsers,
                                                                  screenshot: Shot) -> None:
    page = browsers.page("operator", path="/#/room/dom")
    chart = page.locator('[data-chart="dom-header-pressure"] svg.chart')
    expect(page.locator(".charts")).to_have_attribute("data-loaded", "1h")
    expect(chart).to_have_attribute("data-points", re.compile(r"[1-9]\d*"))
    expect(chart).to_have_attribute("aria-label", re.compile("出水压力"))
    before = int(chart.get_attribute("data-points") or 0)
    until(lambda: int(chart.get_attribute("data-points") or 0) > before, 20, "the trend growing live")
    hours = page.locator('[data-pump="dom-p1"] .pump-run_hours')
    expect(hours.locator(".unit")).to_have_text("h")
    expect(hours.locator(".num")).to_have_text(re.compile(r"^\d[\d,.]*$"))
    screenshot(page, "room-dom-desktop")

    with page.expect_request(re.compile(r"/api/sensors/dom-header-pressure/history\?")) as request:
        page.click('[data-range="24h"]')
    query = dict(p.split("=") for p in request.value.url.split("?", 1)[1].split("&"))
    assert float(query["end"]) - float(query["start"]) == pytest.approx(86400 + 1, abs=2)
    assert float(query["step"]) == 360  # 24 h in 240 points
    expect(page.locator(".charts")).to_have_attribute("data-loaded", "24h")
    expect(page.locator('[data-range="24h"]')).to_have_attribute("aria-pressed", "true")
    expect(page.locator('[data-range="1h"]')).to_have_attribute("aria-pressed", "false")


def test_the_board_shows_stale_sensors_and_a_lost_live_connection(browsers: Browsers, demo: Demo,
                                                                  screenshot: Shot) -> None:
    page = browsers.page("operator", path="/#/board")
    page.click('[data-view="cards"]')
    pressure = page.locator('[data-sensor="dom-header-pressure"]')
    expect(pressure).to_have_attribute("data-state", "ok")
    demo.scenario("device_offline", True)  # the domestic room's PLC drops off the network
    try:
        expect(pressure).to_have_attribute("data-state", "stale", timeout=30_000)
        expect(pressure.locator(".sensor-chip")).to_have_text("数据过时")
        expect(pressure.locator(".last-seen")).to_contain_text("最后数据")  # when it was last heard of
        expect(page.locator('[data-room="dom"] .room-alarms')).to_contain_text("个传感器数据过时")
        expect(page.locator('[data-pump="dom-p1"]')).to_have_attribute("data-run", "unknown")
        expect(page.locator('[data-sensor="fire-main-pressure"]')).to_have_attribute("data-state", "ok")
        screenshot(page, "board-stale-sensors-desktop")
    finally:
        demo.scenario("device_offline", False)
    expect(pressure).to_have_attribute("data-state", "ok", timeout=60_000)

    page.route("**/api/live*", lambda route: route.abort())
    page.reload()
    banner = page.locator(".conn-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("过时")
    expect(page.locator("#live-status")).not_to_have_attribute("data-live", "live")
    expect(pressure).to_have_attribute("data-state", "stale")
    screenshot(page, "board-connection-lost-desktop")
    page.unroute("**/api/live*")
    expect(page.locator("#live-status")).to_have_attribute("data-live", "live", timeout=30_000)
    expect(banner).to_have_count(0)
    expect(pressure).to_have_attribute("data-state", "ok")


# --- technician ---------------------------------------------------------------------------------------


def test_a_technician_works_through_a_checklist_on_a_phone(browsers: Browsers, demo: Demo, accounts: Accounts,
                                                           screenshot: Shot, shared: dict[str, int]) -> None:
    task_id = seed_daily_round(demo)
    assign(accounts, task_id, "tech")
    page = browsers.page("tech", phone=True, path="/#/tasks")
    card = page.locator(f'.task-card[data-task-id="{task_id}"]')
    expect(card).to_contain_text("日常巡检")
    screenshot(page, "tasks-phone")
    card.locator("a").click()
    page.click("[data-action=start]")
    detail = page.locator(".task-detail")
    expect(detail).to_have_attribute("data-state", "in_progress")
    assert unlabelled_controls(page) == []

    gauge = page.locator('details[data-key="gauge"]')
    expect(gauge.locator(".check-range")).to_contain_text("0.3")
    gauge.locator("input.check-value").fill("0.62")  # above the expected range: a failure, saved at once
    expect(gauge.locator(".check-hint")).to_contain_text("超出正常范围")
    gauge.locator("input.check-value").blur()
    expect(page.locator('details[data-key="gauge"]')).to_have_attribute("data-result", "fault")
    note = page.locator("#chk-gauge-note")  # a failure stays open for its note, saved on leaving the field
    note.fill("压力偏高，减压阀需调整")
    note.blur()
    expect(page.locator('details[data-key="gauge"] .check-note')).to_contain_text("压力偏高")

    page.locator('details[data-key="noise"] [data-check="ok"]').click()  # one tap: saved, folded
    expect(page.locator('details[data-key="noise"]')).to_have_attribute("data-result", "ok")
    expect(page.locator('details[data-key="noise"]')).not_to_have_attribute("open", "")

    leak = page.locator('details[data-key="leak"]')
    leak.locator('[data-check="ok"]').click()
    expect(leak.locator(".field-error")).to_have_text("此项需要照片。")
    leak.locator('input[type="file"]').set_input_files(files=photo("flange.png"))  # the photo saves the item
    expect(page.locator('details[data-key="leak"]')).to_have_attribute("data-result", "ok")

    log = page.locator('details[data-key="log"]')
    log.locator("textarea").fill("两台泵运行正常")
    log.locator("textarea").blur()
    expect(page.locator('details[data-key="log"]')).to_have_attribute("data-result", "ok")

    signature = page.locator('details[data-key="sign"]')
    sign(page, signature.locator("canvas"))
    expect(signature.locator(".sig")).to_have_attribute("data-signed", "true")
    signature.locator('[data-check="ok"]').click()
    expect(page.locator('details[data-key="sign"]')).to_have_attribute("data-result", "ok")
    expect(page.locator("#sync-status")).to_have_attribute("data-sync", "synced")
    expect(page.locator('.checklist [role="progressbar"]')).to_have_attribute("aria-valuenow", "5")
    screenshot(page, "task-checklist-phone")

    page.fill("#complete-cause", "减压阀设定偏高")
    page.fill("#complete-action", "记录异常，已通知主管安排调整")
    page.fill("#complete-parts", "无")
    page.fill("#complete-sig-typed", "张师傅")
    page.click(".complete-form button[type=submit]")
    expect(detail).to_have_attribute("data-state", "done")
    expect(page.locator("#sync-status")).to_have_attribute("data-sync", "synced")
    expect(page.locator(".report")).to_contain_text("减压阀设定偏高")

    task = accounts.api("supervisor").get(f"/api/tasks/{task_id}").json()
    assert task["state"] == "done"
    assert task["technician_signed_by"] == accounts.user_id("tech")
    items = {item["key"]: item for item in task["checklist"]}
    assert items["gauge"]["result"] == "fault"
    assert items["gauge"]["value"] == pytest.approx(0.62)
    assert "压力偏高" in items["gauge"]["note"]
    assert {items[k]["result"] for k in ("noise", "leak", "log", "sign")} == {"ok"}
    assert items["log"]["note"] == "两台泵运行正常"
    # The failed gauge item raised one corrective task, linked to the round.
    corrective = accounts.api("supervisor").get("/api/tasks", params={"kind": "corrective"}).json()["data"]
    linked = [t for t in corrective if f":{t['plan_key']}".endswith(f":corrective:{task_id}:gauge")]
    assert len(linked) == 1
    assert "0.62" in linked[0]["title_en"]
    origin = f"来自任务 #{task_id}（日常巡检：生活水泵房）的检查项「出水压力表读数」"
    assert linked[0]["description"].startswith(origin)
    assert f"From task #{task_id} (Daily round: domestic pump room)" in linked[0]["description"]
    api = accounts.api("tech")
    for key, kind in (("leak", "image/jpeg"), ("sign", "image/png")):
        found = re.search(r"\[attachment:(\d+)\]", items[key]["note"])
        assert found, items[key]
        resp = api.get(f"/api/tasks/{task_id}/attachments/{found.group(1)}")
        assert resp.status_code == 200
        assert resp.headers["content-type"] == kind
    signature_notes = [n["text"] for n in task["notes"] if "[attachment:" in n["text"]]
    assert signature_notes, task["notes"]
    screenshot(page, "task-done-phone")
    shared["round"] = task_id


def test_a_technician_completes_a_task_offline_and_sees_it_sync_and_conflicts(
        browsers: Browsers, demo: Demo, accounts: Accounts, screenshot: Shot, shared: dict[str, int]) -> None:
    alarm_task = flange_alarm_task(demo, accounts)
    task_id = int(alarm_task["id"])
    assign(accounts, task_id, "tech")
    other_id = fault_task(accounts, "fire-sump", "fire", "集水坑液位计读数跳变")
    assign(accounts, other_id, "tech")
    supervisor = accounts.api("supervisor")

    context = browsers.context("tech", phone=True)
    page = context.new_page()
    page.on("pageerror", lambda err: browsers.errors.append(str(err)))
    page.goto(f"{demo.url}/#/tasks")
    expect(page.locator(f'.task-card[data-task-id="{task_id}"]')).to_be_visible()
    expect(page.locator(f'.task-card[data-task-id="{other_id}"]')).to_be_visible()
    controlled = False  # the service worker keeps the app shell (polled: the page's CSP forbids eval)
    for _ in range(100):
        controlled = bool(page.evaluate("navigator.serviceWorker.controller !== null"))
        if controlled:
            break
        page.wait_for_timeout(100)
    assert controlled
    page.click(f'.task-card[data-task-id="{task_id}"] a')
    page.click("[data-action=start]")
    detail = page.locator(".task-detail")
    expect(detail).to_have_attribute("data-state", "in_progress")
    expect(page.locator("#sync-status")).to_have_attribute("data-sync", "synced")

    context.set_offline(True)
    page.reload()  # no network: the service worker serves the app, IndexedDB the task
    expect(detail).to_have_attribute("data-state", "in_progress")
    expect(page.locator("#net-status")).to_be_visible()
    expect(page.locator(".net-banner")).to_be_visible()
    expect(page.locator(".offline-note")).to_be_visible()
    page.fill("#complete-cause", "法兰垫片老化")
    page.fill("#complete-action", "更换垫片，紧固螺栓")
    page.fill("#complete-parts", "DN100 法兰垫片 1 片")
    page.fill("#complete-remarks", "离线完成")
    sign(page, page.locator("#complete-sig-canvas"))
    page.click(".complete-form button[type=submit]")
    expect(detail).to_have_attribute("data-state", "done")
    expect(page.locator(".pending-note")).to_contain_text("保存在本机")
    expect(page.locator(".notes .chip-pending")).to_have_text("附件待同步")  # the signature, still here
    expect(page.locator("#sync-status")).to_have_attribute("data-sync", "pending")
    screenshot(page, "task-offline-phone")

    page.goto(f"{demo.url}/#/task/{other_id}")  # a task that is cancelled meanwhile
    page.click("[data-action=start]")
    expect(detail).to_have_attribute("data-state", "in_progress")
    assert int(page.locator("#sync-status").get_attribute("data-pending") or 0) >= 4
    assert supervisor.get(f"/api/tasks/{task_id}").json()["state"] == "in_progress"  # nothing left the phone
    resp = supervisor.post(f"/api/tasks/{other_id}/cancel", json={"reason": "重复报修"})
    assert resp.status_code == 200, resp.text

    context.set_offline(False)
    expect(page.locator("#sync-status")).to_have_attribute("data-sync", "conflict")
    conflict = page.locator(".conflict")
    expect(conflict).to_contain_text("已取消")
    expect(conflict).to_contain_text("开始处理")
    expect(detail).to_have_attribute("data-state", "cancelled")
    screenshot(page, "task-sync-conflict-phone")

    synced = until(lambda: (t := supervisor.get(f"/api/tasks/{task_id}").json())["state"] == "done" and t, 15,
                   "the offline completion on the server")
    assert synced["fault_cause"] == "法兰垫片老化"
    assert synced["parts_replaced"] == "DN100 法兰垫片 1 片"
    assert any("[attachment:" in n["text"] for n in synced["notes"])  # the signature
    conflict.locator("button.btn-danger").click()  # discard the start that came too late
    expect(page.locator("#sync-status")).to_have_attribute("data-sync", "synced")
    page.goto(f"{demo.url}/#/task/{task_id}")
    expect(detail).to_have_attribute("data-state", "done")
    expect(page.locator(".pending-note")).to_have_count(0)
    shared["offline"] = task_id


def test_a_qr_label_opens_the_fault_report_for_its_equipment(
        browsers: Browsers, demo: Demo, accounts: Accounts, screenshot: Shot) -> None:
    labels = browsers.page("supervisor", path="/labels?room=dom")
    label = labels.locator('.label[data-equipment="dom-p1"]')
    url = label.locator(".label-url").inner_text()
    assert url == f"{demo.url}/#/report/dom-p1"
    served = label.locator("svg.qr path.qrline").get_attribute("d")
    expected = re.search(r' d="([^"]+)"', segno.make(url, error="m", micro=False).svg_inline())
    assert expected is not None
    assert served == expected.group(1)  # the code carries exactly the report URL
    site = accounts.api("supervisor").get("/api/site").json()
    room = next(r for r in site["rooms"] if r["id"] == "dom")
    expect(labels.locator(".label")).to_have_count(len(room["equipment"]))
    screenshot(labels, "labels-dom-desktop")

    page = browsers.page("tech", phone=True, path=url.removeprefix(demo.url))
    expect(page.locator("[data-scanned]")).to_have_attribute("data-scanned", "dom-p1")
    expect(page.locator("#report-asset")).to_have_value("dom-p1")
    assert unlabelled_controls(page) == []
    page.click("form.report-form button[type=submit]")
    expect(page.locator("form.report-form .field-error")).to_have_text("请描述故障。")
    page.fill("#report-desc", "1号泵启动时有异响")
    page.click('label[for="prio-high"]')
    page.locator("#report-photo").set_input_files(files=photo("pump.png"))
    expect(page.locator(".photo-field")).to_have_attribute("data-ready", "true")
    page.click("form.report-form button[type=submit]")
    created = page.locator("[data-created-task]")
    expect(created).to_be_visible()
    expect(page.locator("#report-asset")).to_have_value("dom-p1")  # ready for the next report
    expect(page.locator("#report-desc")).to_have_value("")
    screenshot(page, "fault-report-phone")
    task = accounts.api("tech").get(f"/api/tasks/{created.get_attribute('data-created-task')}").json()
    assert (task["kind"], task["asset"], task["room"], task["priority"]) == ("fault", "dom-p1", "dom", "high")
    assert task["created_by"] == accounts.user_id("tech")
    assert task["title_zh"] == "报修：1号生活泵"
    tech = accounts.api("tech")
    path = f"/api/tasks/{task['id']}"
    until(lambda: any("[attachment:" in n["text"] for n in tech.get(path).json()["notes"]), 10, "photo note")


# --- supervisor and director ----------------------------------------------------------------------------


def test_the_supervisor_verifies_one_task_and_sends_another_back(
        browsers: Browsers, accounts: Accounts, screenshot: Shot, shared: dict[str, int]) -> None:
    verify_id = shared.get("offline") or done_task(accounts)
    back_id = shared.get("round") or done_task(accounts)
    page = browsers.page("supervisor", path="/#/verify")
    card = page.locator(f'.verify-card[data-task-id="{verify_id}"]')
    other = page.locator(f'.verify-card[data-task-id="{back_id}"]')
    expect(card).to_be_visible()
    expect(other).to_be_visible()
    if "round" in shared:
        expect(other.locator('tr.is-fault[data-key="gauge"]')).to_contain_text("压力偏高")
        expect(other.locator("img.thumb").first).to_be_visible()
    screenshot(page, "verify-desktop")

    card.locator('[data-action="verify"]').click()
    expect(card).to_have_attribute("data-reviewed", "true")
    expect(card).to_have_count(0)
    supervisor = accounts.api("supervisor")
    verified = supervisor.get(f"/api/tasks/{verify_id}").json()
    assert verified["state"] == "verified"
    assert verified["supervisor_signed_by"] == accounts.user_id("supervisor")

    other.locator('[data-action="send-back"]').click()
    expect(other.locator(".field-error")).to_have_text("请填写退回原因。")
    other.locator("textarea.reason").fill("压力异常需附减压阀调整记录")
    other.locator('[data-action="send-back"]').click()
    expect(other).to_have_count(0)
    sent = supervisor.get(f"/api/tasks/{back_id}").json()
    assert (sent["state"], sent["sent_back_reason"]) == ("sent_back", "压力异常需附减压阀调整记录")

    page.click('[data-nav="escalations"]')
    expect(page.locator("#page-title")).to_have_text("超时升级")
    expect(page.locator("table.escalations")).to_be_visible()
    screenshot(page, "escalations-desktop")
    page.click('[data-nav="alarms"]')
    expect(page.locator("#page-title")).to_have_text("报警总览")
    page.select_option("#f-state", "")
    expect(page.locator("table.alarms caption")).to_contain_text("共")
    screenshot(page, "alarms-desktop")


def test_the_supervisor_assigns_a_reported_fault_to_technicians_by_name(
        browsers: Browsers, accounts: Accounts, screenshot: Shot) -> None:
    task_id = fault_task(accounts, "dom-p2", "dom", "二号泵振动 pump 2 vibrates")
    page = browsers.page("supervisor", path=f"/#/task/{task_id}")
    panel = page.locator("section.assign")
    expect(panel).to_be_visible()
    panel.locator('[data-action="assign"]').click()
    expect(panel.locator(".field-error")).to_have_text("请至少选择一名技术员。")
    panel.get_by_label("维修技工 Technician", exact=True).check()
    panel.get_by_label("维修技工二 Technician 2", exact=True).check()
    screenshot(page, "assign-desktop")
    panel.locator('[data-action="assign"]').click()
    expect(page.locator('.task-detail[data-state="assigned"]')).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("维修技工 Technician, 维修技工二 Technician 2")
    task = accounts.api("supervisor").get(f"/api/tasks/{task_id}").json()
    assert sorted(task["assignee_ids"]) == sorted([accounts.user_id("tech"), accounts.user_id("tech2")])
    assert unlabelled_controls(page) == []

    tech = browsers.page("tech", path=f"/#/task/{task_id}")
    expect(tech.locator(".task-detail")).to_be_visible()
    expect(tech.locator("section.assign")).to_have_count(0)  # technicians do not assign


def test_the_director_overview_counts_alarms_and_tasks(browsers: Browsers, accounts: Accounts,
                                                       screenshot: Shot) -> None:
    page = browsers.page("director", path="/#/overview")
    api = accounts.api("director")
    active = api.get("/api/alarms", params={"state": "active", "limit": 1}).json()["count"]
    expect(page.locator('[data-kpi="activeAlarms"] .kpi-value')).to_have_text(str(active))
    awaiting = api.get("/api/tasks", params={"state": "done", "limit": 1}).json()["count"]
    expect(page.locator('[data-kpi="awaiting"] .kpi-value')).to_have_text(str(awaiting))
    expect(page.locator("button[data-ack]")).to_have_count(0)  # a director reads, does not acknowledge
    screenshot(page, "overview-director-desktop")


# --- language and keyboard ------------------------------------------------------------------------------


def test_english_is_remembered_and_the_app_works_by_keyboard(browsers: Browsers, screenshot: Shot) -> None:
    page = browsers.page(phone=True)
    expect(page.locator("#page-title")).to_have_text("登录")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    page.click("#lang-toggle")
    expect(page.locator("#page-title")).to_have_text("Sign in")
    page.reload()
    expect(page.locator("#page-title")).to_have_text("Sign in")
    assert page.evaluate("document.documentElement.lang") == "en-GB"
    assert page.evaluate("localStorage.getItem('pumpwatch.lang')") == "en"

    # Keyboard only: the name field has focus, Tab moves on, Enter signs in.
    expect(page.locator("#login-user")).to_be_focused()
    page.keyboard.type("tech2")
    page.keyboard.press("Tab")
    expect(page.locator("#login-pass")).to_be_focused()
    page.keyboard.type("tech2-demo-2026")
    page.keyboard.press("Enter")
    expect(page.locator("#page-title")).to_have_text("My tasks")
    expect(page.locator('[data-nav="report"]')).to_have_text("Report a fault")
    expect(page.locator('[data-bottom-nav="scan"]')).to_have_text("Scan")  # on a phone: the bottom bar
    page.locator('[data-bottom-nav="scan"]').focus()
    page.keyboard.press("Enter")
    expect(page.locator("#page-title")).to_have_text("Report a fault")
    expect(page.locator("#page-title")).to_be_focused()  # focus follows the page change
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline  # the focus is visible
    screenshot(page, "report-english-phone")
    page.locator("#lang-toggle").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#page-title")).to_have_text("报修")
    assert page.evaluate("localStorage.getItem('pumpwatch.lang')") == "zh"

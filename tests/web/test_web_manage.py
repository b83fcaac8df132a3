"""The management pages end to end in headless Chromium against `pumpwatch demo`: each supervisor, director
and admin job done in the browser (never by typing an address or calling the API for them), desktop and
phone, Chinese and English, with an axe-core pass on every page and screenshots in test-artifacts/.

The API is used only to set the scene (a fault to assign, a visit inside its window) and to check what the
browser did. One demo process serves the whole module (conftest.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Locator, Page, Request, expect

from tests.web.axe import serious_violations
from tests.web.harness import Accounts, Browsers, Demo

pytestmark = pytest.mark.e2e

Shot = Callable[[Page, str], Path]
NO_JSON = re.compile(r'[{}]|"\w+":|\+00:00|\bNone\b|\bnull\b')


def accessible(page: Page) -> None:
    """No serious or critical axe-core violation on the page as it is now."""
    assert serious_violations(page) == []


def opened(browsers: Browsers, username: str, path: str, phone: bool = False, english: bool = False) -> Page:
    """A signed-in page at `path` (optionally in English), once its content has loaded."""
    context = browsers.context(username, phone)
    if english:
        context.add_init_script("localStorage.setItem('pumpwatch.lang', 'en')")
    page = context.new_page()
    page.on("pageerror", lambda err: browsers.errors.append(str(err)))
    page.goto(browsers.demo.url + path)
    expect(page.locator("#page-title")).to_be_visible()
    expect(page.locator(".loading")).to_have_count(0)
    return page


def fault(accounts: Accounts, asset: str, room: str, text: str, priority: str = "normal") -> int:
    resp = accounts.api("operator").post("/api/tasks", json={
        "title": {"zh": f"报修：{text}", "en": f"Fault: {text}"}, "asset": asset, "room": room,
        "description": text, "priority": priority})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def draw_signature(page: Page, canvas: Locator) -> None:
    """A finger's zigzag on a signature pad."""
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    x, y = box["x"] + 15, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 10):
        page.mouse.move(x + i * 15, y + (8 if i % 2 else -8))
    page.mouse.up()


def no_horizontal_scroll(page: Page) -> None:
    """The page is no wider than the screen (nothing to scroll sideways)."""
    size = page.viewport_size
    assert size is not None
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= size["width"], width


# --- supervisor: the task board -------------------------------------------------------------------------


def test_the_supervisor_finds_unassigned_work_from_the_overview_and_assigns_it_in_bulk(
        browsers: Browsers, accounts: Accounts, screenshot: Shot) -> None:
    first = fault(accounts, "fire-cabinet", "fire", "消防控制柜指示灯不亮", "critical")
    second = fault(accounts, "dom-p1", "dom", "1号泵轴承异响")
    page = opened(browsers, "supervisor", "/#/overview")
    tile = page.locator('[data-kpi="unassigned"]')
    expect(tile).to_have_attribute("href", "#/taskboard?assignee=none")
    expect(page.locator('[data-kpi="openTasks"]')).to_have_attribute("href", "#/taskboard")
    expect(page.locator("#ov-states [data-bar] a")).to_have_count(5)  # tasks by state, each a link
    expect(page.locator('[data-ring="response"]')).to_be_visible()
    accessible(page)
    screenshot(page, "manage-overview-supervisor-desktop")

    tile.click()
    expect(page.locator("#page-title")).to_have_text("任务看板")
    expect(page.locator("#tb-assignee")).to_have_value("none")
    rows = page.locator("table.taskboard tbody tr[data-task-id]")
    expect(page.locator(f'tr[data-task-id="{first}"]')).to_be_visible()
    expect(page.locator(f'tr[data-task-id="{second}"]')).to_be_visible()
    # Unassigned and late work first, the critical fault before the normal one.
    ids = [int(i) for i in rows.evaluate_all("els => els.map((e) => e.dataset.taskId)")]
    assert ids.index(first) < ids.index(second), ids
    row = page.locator(f'tr[data-task-id="{first}"]')
    expect(row.locator('[data-clock="response"]')).to_contain_text("响应")
    expect(row.locator('[data-clock="resolution"]')).to_contain_text("完成")
    expect(row.locator(".unassigned-flag")).to_have_text("未分派")
    accessible(page)

    page.check(f"#sel-{first}")
    page.check(f"#sel-{second}")
    bulk = page.locator("section.bulk-bar")
    expect(bulk).to_contain_text("已选 2 项任务")
    bulk.locator('[data-action="bulk-assign"]').click()
    expect(bulk.locator(".field-error")).to_have_text("请至少选择一名技术员。")
    bulk.get_by_label("维修技工二 Technician 2", exact=True).check()
    screenshot(page, "manage-taskboard-bulk-desktop")
    bulk.locator('[data-action="bulk-assign"]').click()
    expect(page.locator(f'tr[data-task-id="{first}"]')).to_have_count(0)  # no longer unassigned
    api = accounts.api("supervisor")
    for task_id in (first, second):
        task = api.get(f"/api/tasks/{task_id}").json()
        assert task["assignee_ids"] == [accounts.user_id("tech2")]
        assert task["state"] == "assigned"

    page.select_option("#tb-assignee", "")
    page.click('[data-view="kanban"]')
    card = page.locator(f'.kanban-col[data-column="assigned"] .kanban-card[data-task-id="{first}"]')
    expect(card).to_contain_text("维修技工二 Technician 2")
    assert "view=kanban" in page.evaluate("location.hash")
    accessible(page)
    screenshot(page, "manage-taskboard-kanban-desktop")


def test_the_supervisor_creates_a_round_from_a_plan_checklist(browsers: Browsers, accounts: Accounts,
                                                              screenshot: Shot) -> None:
    page = opened(browsers, "supervisor", "/#/taskboard")
    page.click("#new-task")
    form = page.locator("form.create-task")
    page.select_option("#new-template", "daily-round")
    expect(page.locator("#new-kind")).to_have_value("inspection")
    page.select_option("#new-room", "fire")
    expect(page.locator("#new-title-zh")).to_have_value("每日巡检：消防泵房")
    expect(page.locator("#new-title-en")).to_have_value("Daily inspection round: Fire pump room")
    form.get_by_label("维修技工 Technician", exact=True).check()
    accessible(page)
    screenshot(page, "manage-taskboard-new-desktop")
    form.locator("button[type=submit]").click()
    created = page.locator("[data-created-task]")
    expect(created).to_be_visible()
    task = accounts.api("supervisor").get(f"/api/tasks/{created.get_attribute('data-created-task')}").json()
    assert (task["kind"], task["room"], task["state"]) == ("inspection", "fire", "assigned")
    assert task["assignee_ids"] == [accounts.user_id("tech")]
    items = {item["key"]: item for item in task["checklist"]}
    assert len(items) == 10
    assert items["pressure-gauge"]["type"] == "number"  # how each item is answered came with it
    assert (items["pressure-gauge"]["min"], items["pressure-gauge"]["unit"]) == (0.25, "MPa")


def test_the_task_board_on_a_phone_in_english(browsers: Browsers, screenshot: Shot) -> None:
    page = opened(browsers, "supervisor", "/#/taskboard", phone=True, english=True)
    expect(page.locator("#page-title")).to_have_text("Task board")
    expect(page.locator("[data-attention='unassigned']")).to_contain_text("unassigned")
    no_horizontal_scroll(page)
    accessible(page)
    screenshot(page, "manage-taskboard-phone-en")


# --- approvals and exceptions ---------------------------------------------------------------------------


def test_a_visit_is_requested_approved_by_two_people_and_the_escort_logs_it(
        browsers: Browsers, accounts: Accounts, screenshot: Shot) -> None:
    operator = opened(browsers, "operator", "/#/approvals?tab=access")
    operator.click("#new-request")
    operator.fill("#acc-visitor", "王工")
    operator.fill("#acc-org", "市政供水公司")
    operator.fill("#acc-purpose", "更换进水总表")
    operator.select_option("#acc-room", "dom")
    operator.select_option("#acc-escort", str(accounts.user_id("tech")))
    operator.select_option("#acc-escort-deputy", str(accounts.user_id("tech")))
    operator.locator('[data-form="access"] button[type=submit]').click()
    expect(operator.locator('[data-form="access"] .field-error')).to_have_text("代理陪同人须与陪同人不同。")
    operator.select_option("#acc-escort-deputy", str(accounts.user_id("tech2")))
    accessible(operator)
    operator.locator('[data-form="access"] button[type=submit]').click()
    card = operator.locator(".request-card", has_text="王工 进入泵房")
    expect(card).to_be_visible()
    expect(card.locator('[data-action="approve"]')).to_have_count(0)  # nobody approves their own request
    expect(card).to_contain_text("等待工程主管")
    request_id = int((card.get_attribute("data-request") or "").split("-")[1])
    row = accounts.api("operator").get("/api/access-requests").json()["data"]
    mine = next(r for r in row if r["id"] == request_id)
    assert mine["escort_id"] == accounts.user_id("tech")
    assert mine["escort_deputy_id"] == accounts.user_id("tech2")

    supervisor = opened(browsers, "supervisor", "/#/approvals")
    card = supervisor.locator(f'[data-request="access-{request_id}"]')
    expect(card).to_contain_text("值班员 Operator")  # people by name
    expect(card).not_to_contain_text("+00:00")
    expect(supervisor.locator('[data-tab="access"] [data-waiting]')).to_be_visible()
    card.locator('[data-action="approve"]').click()
    expect(card.locator("[data-why]")).to_have_text("你已批准过；第二个批准须由另一个人给出。")
    expect(card.locator('[data-action="approve"]')).to_have_count(0)
    screenshot(supervisor, "manage-approvals-supervisor-desktop")

    director = opened(browsers, "director", "/#/overview")
    waiting = director.locator('[data-kpi="approvals"]')
    expect(waiting.locator(".kpi-value")).to_have_text(re.compile(r"^[1-9]"))  # this one and the demo's visit
    waiting.click()
    card = director.locator(f'[data-request="access-{request_id}"]')
    expect(card.locator(".chip-mine")).to_be_visible()
    accessible(director)
    card.locator('[data-action="approve"]').click()
    expect(card).to_have_attribute("data-state", "approved")
    row = accounts.api("director").get("/api/access-requests").json()["data"]
    approved = next(r for r in row if r["id"] == request_id)
    assert approved["supervisor_approved_by"] == accounts.user_id("supervisor")
    assert approved["director_approved_by"] == accounts.user_id("director")
    # The visit starts a little later: the escort sees why the entry cannot be confirmed yet.
    escort = opened(browsers, "tech", "/#/approvals?tab=access", phone=True)
    expect(escort.locator(f'[data-request="access-{request_id}"] [data-why]')).to_contain_text("可确认进入")


def test_the_escort_confirms_entry_and_exit_on_a_phone(browsers: Browsers, accounts: Accounts,
                                                       screenshot: Shot) -> None:
    start = datetime.now(UTC) - timedelta(minutes=5)
    resp = accounts.api("operator").post("/api/access-requests", json={
        "visitor": "赵师傅", "purpose": "水质取样", "room": "dom", "window_start": start.isoformat(),
        "window_end": (start + timedelta(hours=2)).isoformat(), "escort_id": accounts.user_id("tech")})
    assert resp.status_code == 201, resp.text
    visit = int(resp.json()["id"])
    for who in ("supervisor", "director"):
        assert accounts.api(who).post(f"/api/access-requests/{visit}/approve").status_code == 200
    other = opened(browsers, "tech2", "/#/approvals?tab=access")
    expect(other.locator(f'[data-request="access-{visit}"] [data-action="enter"]')).to_have_count(0)
    page = opened(browsers, "tech", "/#/approvals", phone=True)
    card = page.locator(f'[data-request="access-{visit}"]')
    card.locator('[data-action="enter"]').click()
    expect(card.locator('[data-action="exit"]')).to_be_visible()
    no_horizontal_scroll(page)
    accessible(page)
    screenshot(page, "manage-approvals-escort-phone")
    card.locator('[data-action="exit"]').click()
    expect(card).to_have_count(0)  # closed: no longer among the open requests
    row = next(r for r in accounts.api("tech").get("/api/access-requests").json()["data"] if r["id"] == visit)
    assert row["state"] == "closed"
    assert row["entered_at"]
    assert row["exited_at"]


def test_a_change_is_decided_by_a_supervisor_and_never_by_an_admin_alone(
        browsers: Browsers, accounts: Accounts, screenshot: Shot) -> None:
    tech = opened(browsers, "tech", "/#/approvals?tab=change")
    tech.click("#new-request")
    tech.fill("#chg-title", "更换 1 号泵控制线缆")
    tech.select_option("#chg-asset", "dom-p1")
    tech.fill("#chg-desc", "原线缆绝缘老化，更换为 4×2.5 mm² 电缆")
    tech.locator('[data-form="change"] button[type=submit]').click()
    card = tech.locator(".request-card", has_text="更换 1 号泵控制线缆")
    expect(card).to_have_attribute("data-state", "pending")
    change_id = (card.get_attribute("data-request") or "").split("-")[1]

    admin = opened(browsers, "admin", "/#/approvals?tab=change")
    card = admin.locator(f'[data-request="change-{change_id}"]')
    expect(card.locator('[data-action="approve"]')).to_have_count(0)
    expect(card.locator("[data-why]")).to_contain_text("管理员不能代替")

    supervisor = opened(browsers, "supervisor", "/#/approvals?tab=change", english=True)
    card = supervisor.locator(f'[data-request="change-{change_id}"]')
    expect(card.locator('[data-action="approve"]')).to_have_text("Consent (creates the work task)")
    card.locator('[data-action="approve"]').click()
    expect(card.locator('a[href^="#/task/"]')).to_be_visible()
    accessible(supervisor)
    screenshot(supervisor, "manage-approvals-change-en-desktop")
    row = next(r for r in accounts.api("tech").get("/api/change-requests").json()["data"]
               if r["id"] == int(change_id))
    assert row["state"] == "approved"
    assert row["task_id"]


def test_an_exception_is_requested_approved_shown_on_the_board_and_revoked(
        browsers: Browsers, accounts: Accounts, screenshot: Shot) -> None:
    operator = opened(browsers, "operator", "/#/exceptions")
    expect(operator.locator("#page-title")).to_have_text("特批例外")
    operator.click("#new-request")
    operator.select_option("#exc-sensor", "dom-p2-switch")
    operator.fill("#exc-reason", "2 号泵止回阀更换期间手动操作")
    start = operator.locator("#exc-start")
    start.fill((datetime.now(UTC) + timedelta(hours=8) - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M"))
    operator.locator('[data-form="exception"] button[type=submit]').click()
    card = operator.locator(".request-card", has_text="2号泵转换开关")
    expect(card).to_have_attribute("data-state", "pending")
    expect(card.locator('[data-action="approve"]')).to_have_count(0)
    accessible(operator)
    exception_id = (card.get_attribute("data-request") or "").split("-")[1]

    supervisor = opened(browsers, "supervisor", "/#/exceptions")
    card = supervisor.locator(f'[data-request="exception-{exception_id}"]')
    card.locator('[data-action="approve"]').click()
    expect(card.locator(".chip-in-force")).to_be_visible()
    screenshot(supervisor, "manage-exceptions-desktop")
    supervisor.goto(f"{browsers.demo.url}/#/taskboard")
    expect(supervisor.locator(f'.exceptions-in-force [data-exception-id="{exception_id}"]')).to_contain_text(
        "2号泵转换开关")
    supervisor.goto(f"{browsers.demo.url}/#/exceptions")
    card = supervisor.locator(f'[data-request="exception-{exception_id}"]')
    card.locator('[data-action="revoke"]').click()
    card.locator("[data-confirm='revoke']").click()
    expect(card.locator(".reason-form .field-error")).to_have_text("请填写理由。")
    card.locator("textarea.reason").fill("阀门已换好，恢复自动")
    card.locator("[data-confirm='revoke']").click()
    expect(card).to_have_count(0)
    row = accounts.api("operator").get(f"/api/exceptions/{exception_id}").json()
    assert (row["state"], row["end_reason"]) == ("revoked", "阀门已换好，恢复自动")


# --- shift handover -------------------------------------------------------------------------------------


def test_a_handover_is_written_from_the_draft_accepted_with_a_signature_and_found_again(
        browsers: Browsers, accounts: Accounts, screenshot: Shot) -> None:
    page = opened(browsers, "operator", "/#/handover")
    page.click("#write-handover")
    expect(page.locator("#page-title")).to_have_text("写交接班")
    page.select_option("#ho-room", "dom")
    expect(page.locator('[data-carried="openTasks"] li').first).to_be_visible()  # the server's draft
    page.select_option("#ho-incoming", str(accounts.user_id("tech")))
    page.fill("#ho-urgent", "2 号泵机封渗水，交班后请复查")
    expect(page.locator('#ho-items [data-row="item"]').first).to_be_visible()
    accessible(page)
    screenshot(page, "manage-handover-write-desktop")
    page.click(".handover-form button[type=submit]")
    detail = page.locator(".handover-detail")
    expect(detail).to_have_attribute("data-state", "submitted")
    expect(detail.locator("[data-why]")).to_have_text("交班人不能接收自己写的交接班。")
    handover_id = detail.get_attribute("data-handover-id")

    other = opened(browsers, "tech2", f"/#/handover/{handover_id}")
    expect(other.locator("[data-why]")).to_contain_text("维修技工 Technician")  # named for someone else

    tech = opened(browsers, "tech", "/#/handover", phone=True)
    card = tech.locator(f'.handover-card[data-handover-id="{handover_id}"]')
    expect(card.locator(".chip-mine")).to_have_text("待你接班")
    card.locator("a").click()
    tech.locator('[data-action="accept"]').click()
    expect(tech.locator(".receive .field-error")).to_have_text("请签名。")
    tech.fill("#ho-sig-typed", "张师傅")
    draw_signature(tech, tech.locator("#ho-sig-canvas"))
    no_horizontal_scroll(tech)
    accessible(tech)
    tech.locator('[data-action="accept"]').click()
    expect(tech.locator(".handover-detail")).to_have_attribute("data-state", "accepted")
    screenshot(tech, "manage-handover-accepted-phone")
    row = accounts.api("tech").get(f"/api/handovers/{handover_id}").json()
    assert (row["state"], row["signed_name"]) == ("accepted", "张师傅")
    assert row["received_by"] == accounts.user_id("tech")
    assert row["signature_type"] == "image/png"

    supervisor = opened(browsers, "supervisor", "/#/handover")
    supervisor.fill("#hf-q", "机封渗水")
    supervisor.press("#hf-q", "Enter")
    expect(supervisor.locator(".handover-card")).to_have_count(1)
    expect(supervisor.locator(".handover-card")).to_contain_text("维修技工 Technician 于")
    accessible(supervisor)
    screenshot(supervisor, "manage-handover-history-desktop")


# --- plans, calendar and the monthly report -------------------------------------------------------------


def test_plans_read_as_words_and_the_calendar_shows_what_became_of_each_task(
        browsers: Browsers, accounts: Accounts, screenshot: Shot) -> None:
    page = opened(browsers, "supervisor", "/#/plans")
    table = page.locator("table.plans-table")
    expect(table.locator('[data-plan="duty-rotation"] [data-schedule]')).to_contain_text("每 2 天 08:00")
    expect(table.locator('[data-plan="weekly-sweep"] [data-schedule]')).to_contain_text("每周一 17:00")
    yearly = table.locator('[data-plan="pipe-anti-rust"] [data-schedule]')
    expect(yearly).to_contain_text("每年 12月1日–1月31日")
    assert not NO_JSON.search(table.inner_text()), table.inner_text()[:500]
    accessible(page)
    screenshot(page, "manage-plans-desktop")

    api = accounts.api("supervisor")
    rounds = [t for t in api.get("/api/tasks", params={"kind": "inspection", "limit": 50}).json()["data"]
              if t["plan_key"] and ":daily-round:" in f":{t['plan_key']}"]
    assert rounds, "the demo has today's rounds"
    cancelled = rounds[0]
    assert api.post(f"/api/tasks/{cancelled['id']}/cancel", json={"reason": "停水检修"}).status_code == 200
    page.click('.page-head a[href="#/calendar"]')
    expect(page.locator("#page-title")).to_have_text("计划日历")
    entry = page.locator(f'.cal-grid a.cal-entry[data-task-id="{cancelled["id"]}"]')
    expect(entry).to_have_attribute("data-status", "cancelled")
    expect(entry).to_contain_text("已取消")
    expect(page.locator('.cal-grid .cal-entry[data-status="scheduled"]').first).to_be_visible()
    assert "scheduled" not in page.locator(".cal-grid").inner_text()
    accessible(page)
    screenshot(page, "manage-calendar-desktop")
    entry.click()
    expect(page.locator(".task-detail")).to_have_attribute("data-state", "cancelled")

    phone = opened(browsers, "supervisor", "/#/calendar", phone=True)
    expect(phone.locator(".cal-grid")).to_be_hidden()
    expect(phone.locator(f'.cal-agenda a.cal-entry[data-task-id="{cancelled["id"]}"]')).to_be_visible()
    no_horizontal_scroll(phone)
    accessible(phone)
    screenshot(phone, "manage-calendar-phone")


def test_the_monthly_report_is_a_report_signed_by_two_people(browsers: Browsers, accounts: Accounts,
                                                            screenshot: Shot) -> None:
    page = opened(browsers, "director", "/#/overview")
    page.click('[data-nav="reports"]')
    doc = page.locator(".report-doc")
    expect(doc).to_have_attribute("data-month", re.compile(r"^\d{4}-\d{2}$"))
    month = doc.get_attribute("data-month")
    # The director approves after the supervisor prepared it: two people, in that order.
    expect(doc.locator('[data-sign="prepared"]')).to_have_count(0)
    supervisor = opened(browsers, "supervisor", f"/#/monthly/{month}")
    supervisor.on("dialog", lambda dialog: dialog.accept())
    supervisor.locator('[data-sign="prepared"]').click()
    expect(supervisor.locator('[data-line="prepared"]')).to_have_attribute("data-signed", "true")
    expect(supervisor.locator('[data-sign="approved"]')).to_have_count(0)

    page.reload()
    expect(doc.locator('[data-line="prepared"] .sign-name')).to_have_text("工程主管 Supervisor")
    page.on("dialog", lambda dialog: dialog.accept())
    doc.locator('[data-sign="approved"]').click()
    expect(doc).to_have_attribute("data-status", "closed")
    expect(doc.locator('[data-line="approved"] .sign-name')).to_have_text("管理处主任 Director")
    expect(page.locator("#report-pdf")).to_have_text("下载存档 PDF")
    expect(doc.locator('[data-section="rep-archive"] [data-edition]').first).to_be_visible()
    text = doc.inner_text()
    assert not NO_JSON.search(text), text[:800]
    for word in ("alarm", "corrective", "raised", "attainment"):
        assert word not in text
    accessible(page)
    screenshot(page, "manage-report-desktop")
    page.click('[data-month="next"]')  # this month: a live preview of the demo's work, with its charts
    expect(doc).to_have_attribute("data-status", "preview")
    expect(doc.locator("#rep-end-chart [data-bar]").first).to_be_visible()
    expect(doc.locator('[data-line="approved"] [data-why]')).to_contain_text("尚未结束")
    screenshot(page, "manage-report-preview-desktop")
    page.click('[data-month="prev"]')
    expect(doc).to_have_attribute("data-status", "closed")
    pdf = httpx.get(f"{browsers.demo.url}{page.locator('#report-pdf').get_attribute('href')}",
                    cookies=accounts.session("director"), timeout=30)
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    assert pdf.headers["x-content-sha256"]

    page.emulate_media(media="print")
    expect(page.locator(".report-toolbar")).to_be_hidden()
    expect(page.locator("header.top")).to_be_hidden()
    expect(doc.locator('[data-sign="approved"]')).to_have_count(0)
    screenshot(page, "manage-report-print")
    margins = page.evaluate("""() => [...document.styleSheets].flatMap((s) => [...s.cssRules])
        .filter((r) => r.media && r.media.mediaText === 'print').flatMap((r) => [...r.cssRules])
        .filter((r) => r.constructor.name === 'CSSPageRule').map((r) => r.cssText).join(' ')""")
    assert "counter(page)" in margins, margins
    assert "margin" in margins, margins

    phone = opened(browsers, "director", f"/#/monthly/{month}", phone=True, english=True)
    expect(phone.locator(".report-title")).to_contain_text("Monthly maintenance report")
    no_horizontal_scroll(phone)
    accessible(phone)
    screenshot(phone, "manage-report-phone-en")


# --- admin: users, deputies, sign-in failures, API docs, audit log --------------------------------------


def test_the_admin_manages_users_deputies_and_sign_in_failures(browsers: Browsers, accounts: Accounts,
                                                              demo: Demo, screenshot: Shot) -> None:
    page = opened(browsers, "admin", "/#/users")
    page.click("#new-user")
    page.fill("#nu-name", "night-op")
    page.fill("#nu-display", "夜班值班员 Night operator")
    page.fill("#nu-pw", "night-shift-2026")
    page.fill("#nu-pw2", "night-shift-2025")
    page.check("#nu-role-operator")
    page.click(".user-form button[type=submit]")
    expect(page.locator(".user-form .field-error")).to_have_text("两次输入的密码不一致。")
    page.fill("#nu-pw2", "night-shift-2026")
    accessible(page)
    page.click(".user-form button[type=submit]")
    row = page.locator('tr[data-username="night-op"]')
    expect(row).to_contain_text("值班员")
    user_id = row.get_attribute("data-user-id")

    row.locator('[data-action="edit"]').click()
    editor = page.locator(f'[data-editor="{user_id}"]')
    editor.locator(f"#eu-{user_id}-role-technician").check()
    editor.locator('[data-action="save-roles"]').click()
    expect(page.locator('tr[data-username="night-op"]')).to_contain_text("维修技工")
    # Held for one estate instead of the whole organisation.
    estate = accounts.api("admin").get("/api/estates").json()["data"][0]
    page.locator('tr[data-username="night-op"] [data-action="edit"]').click()
    editor = page.locator(f'[data-editor="{user_id}"]')
    expect(editor.locator(f'[id="eu-{user_id}-estate-{estate["id"]}"]')).to_be_disabled()
    editor.locator(f"#eu-{user_id}-estate-whole").uncheck()
    editor.locator('[data-action="save-estates"]').click()
    expect(editor.locator(".field-error")).to_have_text("请至少选择一个项目，或选“全公司”。")
    editor.locator(f'[id="eu-{user_id}-estate-{estate["id"]}"]').check()
    accessible(page)
    editor.locator('[data-action="save-estates"]').click()
    expect(page.locator('tr[data-username="night-op"] [data-estate]')).to_have_text(estate["name"]["zh"])
    page.locator('tr[data-username="night-op"] [data-action="edit"]').click()
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator(f'[data-editor="{user_id}"] [data-action="deactivate"]').click()
    expect(page.locator('tr[data-username="night-op"]')).to_contain_text("已停用")
    users = {u["username"]: u for u in accounts.api("admin").get("/api/users").json()["data"]}
    assert sorted(users["night-op"]["roles"]) == ["operator", "technician"]
    assert users["night-op"]["estates"] == [estate["id"]]
    assert users["night-op"]["active"] is False

    # tech2 stands in for the supervisor for a week, then the period is ended.
    page.select_option("#dp-principal", str(accounts.user_id("supervisor")))
    expect(page.locator("#dp-role")).to_have_value("supervisor")
    page.select_option("#dp-deputy", str(accounts.user_id("tech2")))
    page.click(".deputy-form button[type=submit]")
    deputy = page.locator('.deputies-table tr[data-state="active"]')
    expect(deputy).to_contain_text("维修技工二 Technician 2")
    change = accounts.api("operator").post("/api/change-requests", json={
        "title": "加装压力表", "description": "出水管加装机械压力表一只"}).json()["id"]
    stand_in = opened(browsers, "tech2", "/#/approvals?tab=change")
    expect(stand_in.locator(f'[data-request="change-{change}"] [data-action="approve"]')).to_be_visible()
    deputy.locator('[data-action="end-deputy"]').click()
    expect(page.locator('.deputies-table tr[data-state="active"]')).to_have_count(0)

    wrong = httpx.post(f"{demo.url}/api/auth/login", json={"username": "tech2", "password": "not-it"},
                       timeout=10)
    assert wrong.status_code == 401
    page.reload()
    failure = page.locator('.failures-table tr[data-account="tech2"]')
    expect(failure).to_contain_text("维修技工二 Technician 2")
    accessible(page)
    screenshot(page, "manage-users-desktop")
    failure.locator('[data-action="unlock"]').click()
    expect(page.locator('.failures-table tr[data-account="tech2"]')).to_have_count(0)


def test_the_api_docs_work_without_the_internet(browsers: Browsers, screenshot: Shot) -> None:
    context = browsers.context("admin")
    outside: list[str] = []

    def only_here(request: Request) -> None:
        if not request.url.startswith(browsers.demo.url) and not request.url.startswith("data:"):
            outside.append(request.url)

    context.route(re.compile(r"^(?!" + re.escape(browsers.demo.url) + ").*"), lambda route: route.abort())
    page = context.new_page()
    page.on("request", only_here)
    page.on("pageerror", lambda err: browsers.errors.append(str(err)))
    refused: list[str] = []
    page.on("console", lambda msg: refused.append(msg.text) if "Content Security" in msg.text else None)
    page.goto(f"{browsers.demo.url}/#/users")
    page.click("#api-docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("PumpWatch")
    expect(page.locator(".opblock-tag-section").first).to_be_visible()
    assert outside == []
    assert refused == []
    csp = httpx.get(f"{browsers.demo.url}/docs", timeout=10).headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe" not in csp
    screenshot(page, "manage-api-docs-desktop")


def test_the_audit_log_speaks_in_words_and_links_to_records(browsers: Browsers, accounts: Accounts,
                                                           screenshot: Shot) -> None:
    task_id = fault(accounts, "dom-tank", "dom", "水箱液位计读数不稳")
    assert accounts.api("supervisor").post(f"/api/tasks/{task_id}/assign",
                                           json={"assignees": [accounts.user_id("tech")]}).status_code == 200
    page = opened(browsers, "director", f"/#/audit?entity=task&entity_id={task_id}")
    rows = page.locator("table.audit tbody tr[data-audit-id]")
    expect(rows).to_have_count(2)
    assign = page.locator('tr[data-action="assign"]')
    expect(assign.locator(".audit-act")).to_have_text("派工")
    expect(assign.locator('[data-field="assignees"]')).to_contain_text("负责人：—")
    expect(assign.locator('[data-field="assignees"]')).to_contain_text("维修技工 Technician")
    expect(assign.locator('[data-entity-link="task"]')).to_have_attribute("href", f"#/task/{task_id}")
    assert not re.search(r"\+00:00|T\d\d:\d\d:\d\d", rows.first.inner_text())
    accessible(page)
    screenshot(page, "manage-audit-desktop")
    english = opened(browsers, "admin", f"/#/audit?entity=task&entity_id={task_id}", english=True)
    expect(english.locator('tr[data-action="assign"] .audit-act')).to_have_text("assigned")
    accessible(english)


# --- every page of the three roles: axe-core, both languages, both viewports ----------------------------

PAGES = ["/#/overview", "/#/taskboard", "/#/approvals", "/#/exceptions", "/#/handover", "/#/plans",
         "/#/calendar", "/#/monthly", "/#/audit", "/#/users", "/#/escalations", "/#/verify", "/#/alarms"]


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
@pytest.mark.parametrize("english", [False, True], ids=["zh", "en"])
def test_every_management_page_passes_axe(browsers: Browsers, screenshot: Shot, phone: bool,
                                          english: bool) -> None:
    page = opened(browsers, "admin", "/#/overview", phone=phone, english=english)
    started = time.monotonic()
    for path in PAGES:
        page.goto(browsers.demo.url + path)
        expect(page.locator("#page-title")).to_be_visible()
        expect(page.locator(".loading")).to_have_count(0)
        found = serious_violations(page)
        assert found == [], (path, found)
        if phone:
            no_horizontal_scroll(page)
    assert time.monotonic() - started < 60
    if phone and not english:
        screenshot(page, "manage-alarms-admin-phone")


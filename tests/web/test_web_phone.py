"""The technician's whole job on a 390x844 phone against `pumpwatch demo`: the round the demo assigned
today, answered with one tap an item (saved at once, folded when done, a progress bar, the sensor's value
beside the gauge), completed without a fault cause when nothing failed; a document uploaded for the item
that needs it; the bottom navigation; changes made offline that sync later; in Chinese and English, with
no serious axe-core violation.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import FilePayload, Locator, Page, expect

from maintenance.db import make_engine, session_factory
from maintenance.models import Task
from maintenance.task_flow import ChecklistItem
from maintenance.tasks import TaskService
from maintenance.vocab import Priority, TaskKind
from pumpwatch.clock import SystemClock
from pumpwatch.site import Text
from tests.web.axe import serious_violations, until
from tests.web.harness import Accounts, Browsers, Demo

pytestmark = pytest.mark.e2e

Shot = Callable[[Page, str], Path]
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763"
                    "f8cfc0000003010100c9fe92ef0000000049454e44ae426082")
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def todays_round(accounts: Accounts, username: str, room: str) -> dict[str, Any]:
    """The inspection round of `room` the demo made today and assigned to `username`."""
    query: dict[str, str | int] = {"mine": "true", "kind": "inspection", "room": room, "limit": 50}
    tasks = accounts.api(username).get("/api/tasks", params=query).json()["data"]
    found: list[dict[str, Any]] = [t for t in tasks if ":daily-round:" in f":{t['plan_key'] or ''}"]
    assert found, tasks
    return found[0]


def sign(page: Page, canvas: Locator) -> None:
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    x, y = box["x"] + 20, box["y"] + box["height"] * 0.6
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 10):
        page.mouse.move(x + i * 18, y - (10 if i % 2 else -8))
    page.mouse.up()


def answer_everything(page: Page, task: dict[str, Any]) -> int:
    """Answer every open item the way a technician on a round does; returns the taps and fields used."""
    actions = 0
    for item in task["checklist"]:
        box = page.locator(f'details.check-item[data-key="{item["key"]}"]')
        kind = item.get("type") or "pass_fail"
        if kind == "number":
            low, high = item.get("min"), item.get("max")
            value = (low + high) / 2 if low is not None and high is not None else 1
            if item.get("compare"):  # a gauge: read what the sensor beside it says
                shown = box.locator("[data-sensor-value] strong").first.inner_text()
                value = float(re.sub(r"[^\d.]", "", shown.split()[0]))
            field = box.locator("input.check-value")
            field.fill(f"{value:g}")
            field.press("Enter")
            field.blur()
        elif kind == "text":
            box.locator("textarea").fill("滤芯压差正常")
            box.locator("textarea").blur()
        elif kind == "photo":
            photo: FilePayload = {"name": "guard.png", "mimeType": "image/png", "buffer": PNG}
            box.locator('input[type="file"]').first.set_input_files(files=photo)
        else:
            box.locator('[data-check="ok"]').click()
        actions += 1
        expect(page.locator(f'details.check-item[data-key="{item["key"]}"]')).to_have_attribute(
            "data-result", "ok")
    return actions


def test_the_technician_does_todays_round_with_one_tap_per_item(
        browsers: Browsers, accounts: Accounts, screenshot: Shot) -> None:
    task = todays_round(accounts, "tech", "dom")
    assert task["state"] == "assigned"
    page = browsers.page("tech", phone=True, path="/#/tasks")
    card = page.locator(f'.task-card[data-task-id="{task["id"]}"]')
    expect(card).to_contain_text("每日巡检")
    card.locator("a").click()
    page.click("[data-action=start]")
    detail = page.locator(".task-detail")
    expect(detail).to_have_attribute("data-state", "in_progress")
    progress = page.locator('.checklist [role="progressbar"]')
    expect(progress).to_have_attribute("aria-valuenow", "0")
    expect(progress).to_have_attribute("aria-valuemax", str(len(task["checklist"])))
    assert page.locator(".checklist button[type=submit]").count() == 0  # no save button per item

    gauge = page.locator('details.check-item[data-key="pressure-gauge"]')
    beside = gauge.locator('[data-sensor-value="dom-header-pressure"]')
    expect(beside).to_contain_text("MPa")  # the sensor's value beside the gauge to read
    expect(beside).to_contain_text(re.compile(r"\d[.,]\d+ MPa"))
    assert serious_violations(page) == []
    screenshot(page, "round-open-phone")

    full = accounts.api("tech").get(f"/api/tasks/{task['id']}").json()
    taps = answer_everything(page, full)
    assert taps == len(full["checklist"])  # one action an item
    expect(progress).to_have_attribute("aria-valuenow", str(taps))
    expect(page.locator("details.check-item[open]")).to_have_count(0)  # done items fold away
    expect(page.locator("#sync-status")).to_have_attribute("data-sync", "synced")
    screenshot(page, "round-answered-phone")

    # Nothing failed on a routine round: no fault cause to give.
    expect(page.locator("[data-no-cause]")).to_be_visible()
    expect(page.locator("#complete-cause")).to_have_count(0)
    page.fill("#complete-action", "按巡检表完成巡检，设备运行正常")
    page.fill("#complete-sig-typed", "张师傅")
    page.click(".complete-form button[type=submit]")
    expect(detail).to_have_attribute("data-state", "done")
    path = f"/api/tasks/{task['id']}"
    done = until(lambda: (t := accounts.api("supervisor").get(path).json())["state"] == "done" and t, 15,
                 "the round done on the server")
    assert done["fault_cause"] is None
    assert {i["result"] for i in done["checklist"]} == {"ok"}
    gauge_item = next(i for i in done["checklist"] if i["key"] == "pressure-gauge")
    assert "dom-header-pressure" in gauge_item["sensor_values"]  # the server set the sensor beside it
    assert serious_violations(page) == []


def document_task(demo: Demo) -> int:
    """A task whose one item needs a document (say, the pressure vessel's inspection certificate)."""
    engine = make_engine(f"sqlite:///{demo.state_dir / 'pumpwatch.db'}")
    try:
        sessions = session_factory(engine)
        task = TaskService(sessions, SystemClock()).create_from_plan(
            f"web-doc-{uuid.uuid4().hex[:8]}", Text(zh="气压罐年检", en="Pressure tank annual inspection"),
            kind=TaskKind.INSPECTION, priority=Priority.NORMAL, due_at=datetime.now(UTC) + timedelta(days=2),
            asset="dom-ptank", room="dom",
            checklist=[ChecklistItem("certificate", Text(zh="上传检验合格证",
                                                         en="Upload the inspection certificate"))])
        with sessions.begin() as session:
            row = session.get(Task, task.id)
            assert row is not None
            row.checklist = [item | {"type": "pass_fail", "attachment": "required"} for item in row.checklist]
        return int(task.id)
    finally:
        engine.dispose()


def test_a_document_item_uploads_its_file_for_its_checklist_key(
        browsers: Browsers, demo: Demo, accounts: Accounts, screenshot: Shot) -> None:
    task_id = document_task(demo)
    resp = accounts.api("supervisor").post(f"/api/tasks/{task_id}/assign",
                                           json={"assignees": [accounts.user_id("tech")]})
    assert resp.status_code == 200, resp.text
    page = browsers.page("tech", phone=True, path=f"/#/task/{task_id}")
    page.click("[data-action=start]")
    item = page.locator('details.check-item[data-key="certificate"]')
    expect(item.locator("[data-doc]")).to_have_attribute("data-doc", "missing")
    expect(item.locator("[data-doc]")).to_have_text("验收前需上传文件")
    item.locator("#chk-certificate-doc").set_input_files(
        files={"name": "certificate.pdf", "mimeType": "application/pdf", "buffer": PDF})
    document = page.locator('details[data-key="certificate"] [data-doc]')
    expect(document).to_have_attribute("data-doc", "attached")
    expect(page.locator('details[data-key="certificate"]')).to_have_attribute("data-result", "ok")
    expect(page.locator("#sync-status")).to_have_attribute("data-sync", "synced")
    screenshot(page, "document-item-phone")
    page.fill("#complete-action", "合格证已上传")
    page.fill("#complete-sig-typed", "张师傅")
    page.click(".complete-form button[type=submit]")
    expect(page.locator(".task-detail")).to_have_attribute("data-state", "done")
    # The supervisor can sign it off only because the file is linked to the item (409 otherwise).
    path = f"/api/tasks/{task_id}"
    until(lambda: accounts.api("supervisor").get(path).json()["state"] == "done", 15, "done on the server")
    resp = accounts.api("supervisor").post(f"/api/tasks/{task_id}/verify")
    assert resp.status_code == 200, resp.text


def test_the_phone_has_a_bottom_bar_and_keeps_changes_made_offline(
        browsers: Browsers, accounts: Accounts, screenshot: Shot) -> None:
    task = todays_round(accounts, "tech2", "fire")
    page = browsers.page(phone=True)
    page.click("#lang-toggle")
    page.fill("#login-user", "tech2")
    page.fill("#login-pass", "tech2-demo-2026")
    page.click("form.login button[type=submit]")
    expect(page.locator("#page-title")).to_have_text("My tasks")
    accounts.keep("tech2", page.context)
    bar = page.locator("#bottom-nav")
    expect(bar).to_be_visible()
    expect(page.locator(".nav")).to_be_hidden()  # no row of nine links scrolling sideways
    assert bar.locator("a").all_inner_texts() == ["Tasks", "Scan", "Sync", "Me"]
    bar.locator('[data-bottom-nav="me"]').click()
    expect(page.locator("#page-title")).to_have_text("Me")
    expect(page.locator("[data-me-link]").first).to_be_visible()
    assert serious_violations(page) == []
    bar.locator('[data-bottom-nav="tasks"]').click()
    expect(page.locator("#page-title")).to_have_text("My tasks")
    expect(bar.locator('[data-bottom-nav="tasks"]')).to_have_attribute("aria-current", "page")
    screenshot(page, "tasks-bottom-nav-english-phone")

    page.click(f'.task-card[data-task-id="{task["id"]}"] a')
    page.click("[data-action=start]")
    expect(page.locator(".task-detail")).to_have_attribute("data-state", "in_progress")
    expect(page.locator("#sync-status")).to_have_attribute("data-sync", "synced")
    first = next(i["key"] for i in task["checklist"] if (i.get("type") or "pass_fail") == "pass_fail")
    page.context.set_offline(True)
    page.locator(f'details[data-key="{first}"] [data-check="ok"]').click()
    expect(page.locator(f'details[data-key="{first}"]')).to_have_attribute("data-result", "ok")
    summary = page.locator(f'details[data-key="{first}"] > summary.check-summary')
    expect(summary).to_contain_text("not synced yet")
    expect(page.locator("#sync-status")).to_have_attribute("data-sync", "pending")
    before = accounts.api("tech2").get(f"/api/tasks/{task['id']}").json()["checklist"]
    assert next(i for i in before if i["key"] == first)["result"] is None  # nothing left the phone
    page.context.set_offline(False)
    expect(page.locator("#sync-status")).to_have_attribute("data-sync", "synced", timeout=30_000)
    saved = accounts.api("tech2").get(f"/api/tasks/{task['id']}").json()
    assert next(i for i in saved["checklist"] if i["key"] == first)["result"] == "ok"

    # A failure keeps its item open for the note, raises the fix, and the report asks for a fault cause.
    fail = next(i["key"] for i in task["checklist"]
                if (i.get("type") or "pass_fail") == "pass_fail" and i["key"] != first)
    item = page.locator(f'details[data-key="{fail}"]')
    item.locator('[data-check="fault"]').click()
    expect(page.locator(f'details[data-key="{fail}"]')).to_have_attribute("data-result", "fault")
    note = page.locator(f"#chk-{fail}-note")
    expect(note).to_be_visible()
    note.fill("Sump float sticks")
    note.blur()
    def noted() -> bool:
        items = accounts.api("tech2").get(f"/api/tasks/{task['id']}").json()["checklist"]
        return "Sump float" in (next(i for i in items if i["key"] == fail)["note"] or "")

    until(noted, 15, "the note saved on leaving the field")
    expect(page.locator("#complete-cause")).to_be_visible()
    screenshot(page, "round-fault-english-phone")
    query: dict[str, str | int] = {"kind": "corrective", "limit": 100}
    fixes = accounts.api("tech2").get("/api/tasks", params=query).json()["data"]
    fix = next(t for t in fixes if f":{t['plan_key']}".endswith(f":corrective:{task['id']}:{fail}"))
    assert fix["title_zh"].startswith("整改：")
    assert fix["title_en"].startswith("Fix: ")
    page.goto(f"{browsers.demo.url}/#/task/{fix['id']}")
    described = page.locator("dl.facts")
    expect(described).to_contain_text(f"From task #{task['id']}")
    assert "来自任务" not in described.inner_text()
    page.click("#lang-toggle")
    expect(described).to_contain_text(f"来自任务 #{task['id']}")
    assert "From task" not in described.inner_text()

"""Estates in Chromium: a director filters the alarm list and the task board by estate (the choice survives
a reload), reads the plan calendar and the monthly report of the estate they choose, and opens the portfolio
report (sorted with the keyboard, its CSV link, axe clean in both languages); a technician of one estate
sees no estate selector and only that estate's tasks and alarms.

Two estates served by the real API in-process (uvicorn on a free port, SQLite): A is the example site, B a
copy of it under another id and name; each has an alarm and its task, B's alarm critical.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.site import Severity, Site, Text
from pumpwatch.sitefile import load_site
from tests.support.state import PASSWORD
from tests.web.axe import serious_violations
from tests.web.inprocess import Served, deployment, serving

pytestmark = pytest.mark.e2e
EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
A, B = "harbour-view", "twin-towers"
B_NAME = Text(zh="双子塔花园", en="Twin Towers Gardens")


@dataclass
class Estates:
    served: Served
    tasks: dict[str, int]  # estate -> the task of its alarm
    alarms: dict[str, int]

    @property
    def url(self) -> str:
        return self.served.url


@pytest.fixture(scope="module")
def estates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estates]:
    site = load_site(EXAMPLE)
    twin: Site = site.model_copy(update={"site": site.site.model_copy(update={"id": B, "name": B_NAME})})
    built = deployment(tmp_path_factory.mktemp("web-portfolio"), site, twin)
    auth, tasks, alarms, clock = built.ctx.auth, built.ctx.tasks, built.ctx.alarms, built.ctx.clock
    auth.create_user("director", PASSWORD, roles=["director"])
    tech = auth.create_user("tech-a", PASSWORD, roles=["technician"], estates=[A])
    lead = auth.create_user("sup-org", PASSWORD, roles=["supervisor"])
    for estate, severity in ((A, Severity.MAJOR), (B, Severity.CRITICAL)):
        alarms.apply(AlarmEvent(AlarmAction.RAISED, AlarmKey("dom-p1", "dry_run", estate), severity,
                                clock.now(), "dom", Text(zh="干转", en="dry run")))
    task_of: dict[str, int] = {}
    alarm_of: dict[str, int] = {}
    for alarm in alarms.list_alarms()[0]:
        task = alarms.task_for(alarm.id)
        assert task is not None
        task_of[alarm.estate], alarm_of[alarm.estate] = task.id, alarm.id
        # Both go to the technician of A: scope, not the assignment, keeps B's off their list.
        tasks.assign(task.id, lead, [tech.id])
    with serving(built.ctx, built.store, ["director", "tech-a"]) as served:
        yield Estates(served, task_of, alarm_of)
    built.engine.dispose()


def _page(browser: Browser, estates: Estates, user: str, path: str, errors: list[str],
          english: bool = False) -> Page:
    page = estates.served.page(browser, user, errors, english=english)
    page.goto(estates.url + path)
    expect(page.locator("#page-title")).to_be_visible()
    expect(page.locator(".loading")).to_have_count(0)
    return page


def _alarm_rows(page: Page) -> list[str]:
    expect(page.locator(".loading")).to_have_count(0)
    return sorted(page.locator("[data-alarm-id]").evaluate_all("rows => rows.map(r => r.dataset.alarmId)"))


def test_a_director_filters_by_estate_and_reads_the_portfolio(
        browser: Browser, estates: Estates, screenshot: Callable[[Page, str], Path]) -> None:
    errors: list[str] = []
    page = _page(browser, estates, "director", "/#/alarms", errors)
    rows = page.locator("[data-alarm-id]")
    expect(rows).to_have_count(2)  # every estate's
    page.select_option("#f-estate", B)
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-alarm-id", str(estates.alarms[B]))
    expect(page).to_have_url(f"{estates.url}/#/alarms?estate={B}")
    page.reload()
    expect(page.locator("#f-estate")).to_have_value(B)
    expect(page.locator("[data-alarm-id]")).to_have_count(1)
    assert serious_violations(page) == []
    screenshot(page, "alarms-by-estate-desktop")

    # The task board: the estate in the address; the board shows that estate's tasks only.
    page.goto(f"{estates.url}/#/taskboard?estate={A}")
    board = page.locator(".taskboard tbody tr[data-task-id]")
    expect(board).to_have_count(1)
    expect(board.first).to_have_attribute("data-task-id", str(estates.tasks[A]))
    page.select_option("#tb-estate", "")
    expect(board).to_have_count(2)
    page.select_option("#tb-estate", B)
    expect(board).to_have_count(1)
    expect(board.first).to_have_attribute("data-task-id", str(estates.tasks[B]))
    expect(board.first.locator(".where")).to_contain_text(B_NAME.zh)  # each row names its estate
    expect(page).to_have_url(f"{estates.url}/#/taskboard?estate={B}")
    assert serious_violations(page) == []
    screenshot(page, "taskboard-by-estate-desktop")

    # The calendar and the monthly report of the chosen estate (kept on this device: B).
    page.goto(f"{estates.url}/#/calendar")
    expect(page.locator("#cal-estate")).to_have_value(B)
    expect(page.locator(".cal-slot[data-month]")).to_have_count(1)
    page.goto(f"{estates.url}/#/monthly")
    expect(page.locator("#report-estate")).to_have_value(B)
    expect(page.locator(".report-site")).to_have_text(B_NAME.zh)
    page.select_option("#report-estate", A)
    expect(page.locator(".report-site")).not_to_have_text(B_NAME.zh)
    expect(page.locator("#report-pdf")).to_have_attribute("href", f"/api/reports/monthly/{_last_month()}"
                                                                   f"?format=pdf&estate={A}")

    # The portfolio report from the header's "more" menu: last month, then this month with the alarms.
    page.locator("#nav-more summary").click()
    page.locator("[data-nav=portfolio]").click()
    table = page.locator("#portfolio-table tbody tr[data-estate]")
    expect(table).to_have_count(2)
    page.locator("[data-month=next]").click()
    month = _this_month()
    expect(page).to_have_url(f"{estates.url}/#/portfolio?month={month}")
    expect(page.locator("#portfolio-csv")).to_have_attribute("href",
                                                             f"/api/reports/portfolio?month={month}&format=csv")
    critical = page.locator(f'#portfolio-table tr[data-estate="{B}"] [data-cell=open_critical]')
    expect(critical).to_have_text("1")
    # Sorted by open criticals with the keyboard: most first is the second press (the first is fewest first).
    page.locator("[data-sort=open_critical]").focus()
    page.keyboard.press("Enter")
    expect(page.locator("[data-sort=open_critical]")).to_be_focused()
    page.keyboard.press("Enter")
    expect(table.first).to_have_attribute("data-estate", B)
    expect(page.locator("th[aria-sort=descending] [data-sort=open_critical]")).to_have_count(1)
    expect(page).to_have_url(f"{estates.url}/#/portfolio?month={month}&sort=open_critical&dir=desc")
    assert serious_violations(page) == []
    screenshot(page, "portfolio-director-desktop")

    english = _page(browser, estates, "director", f"/#/portfolio?month={month}", errors, english=True)
    expect(english.locator("#portfolio-table thead")).to_contain_text("Open critical")
    expect(english.locator(f'#portfolio-table tr[data-estate="{B}"] th')).to_have_text(B_NAME.en)
    assert serious_violations(english) == []
    screenshot(english, "portfolio-director-desktop-en")
    assert errors == []


def test_a_technician_of_one_estate_has_no_estate_selector(browser: Browser, estates: Estates) -> None:
    errors: list[str] = []
    page = _page(browser, estates, "tech-a", "/#/tasks", errors)
    cards = page.locator("[data-task-id]")
    expect(cards).to_have_count(1)
    expect(cards.first).to_have_attribute("data-task-id", str(estates.tasks[A]))
    page.goto(f"{estates.url}/#/alarms?estate={B}")  # someone else's address: B stays out of sight
    expect(page.locator("#page-title")).to_be_visible()
    expect(page.locator("[data-alarm-id]")).to_have_count(1)
    assert _alarm_rows(page) == [str(estates.alarms[A])]
    expect(page.locator("[data-estate-select]")).to_have_count(0)
    expect(page.locator("[data-nav=portfolio]")).to_have_count(0)
    assert errors == []


def _this_month() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")


def _last_month() -> str:
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    return f"{now.year - (now.month == 1):04d}-{(now.month - 2) % 12 + 1:02d}"

"""People scoped to estates, in Chromium: a technician of estate A signed in to the web UI sees only
estate A on every page the UI offers them, and B's task, room, sensor, label and calendar are a 404 by
URL exactly like things that do not exist; a supervisor of A gets a 404 for B's monthly report.

Two estates served by the real API in-process (uvicorn on a free port, SQLite): A is the example site,
B a copy of it under another id and name, so only scope keeps B off A's pages (the room and equipment
ids are the same in both).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from api.context import ApiContext
from collector.stores.embedded import EmbeddedStore
from maintenance.alarms import AlarmService
from maintenance.approvals import ApprovalService
from maintenance.audit import AuditTrail
from maintenance.auth import AuthService
from maintenance.db import make_engine, session_factory, upgrade
from maintenance.exceptions import ExceptionService
from maintenance.handover import HandoverService
from maintenance.reports import MonthlyReport
from maintenance.tasks import TaskService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import SystemClock
from pumpwatch.portfolio import Portfolio
from pumpwatch.readings import Reading
from pumpwatch.site import Severity, Site, Text
from pumpwatch.sitefile import load_site
from tests.support.state import FAST_HASHER, PASSWORD
from tests.web.inprocess import Served, serving

pytestmark = pytest.mark.e2e
EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
A, B = "harbour-view", "twin-towers"
B_NAME = Text(zh="双子塔花园", en="Twin Towers Gardens")


@dataclass
class TwoEstates:
    served: Served
    tasks: dict[str, int]  # estate -> the task raised by its alarm

    @property
    def url(self) -> str:
        return self.served.url


def _other_estate(site: Site) -> Site:
    info = site.site.model_copy(update={"id": B, "name": B_NAME})
    return site.model_copy(update={"site": info})


@pytest.fixture(scope="module")
def two_estates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoEstates]:
    root = tmp_path_factory.mktemp("web-scope")
    engine = make_engine(f"sqlite:///{root / 'state.db'}")
    upgrade(engine)
    sessions = session_factory(engine)
    clock = SystemClock()
    site = load_site(EXAMPLE)
    portfolio = Portfolio.of(site, _other_estate(site))
    catalog = SensorCatalog(portfolio)
    store = EmbeddedStore(root / "series.db", catalog)
    auth = AuthService(sessions, clock, hasher=FAST_HASHER)
    tasks = TaskService(sessions, clock)
    alarms = AlarmService(sessions, clock, tasks)
    handovers = HandoverService(sessions, clock, portfolio)
    ctx = ApiContext(site=site, catalog=catalog, store=store, readings=LiveBus(), alarm_events=LiveBus(),
                     auth=auth, tasks=tasks, alarms=alarms, clock=clock, attachments_dir=root / "files",
                     reports=MonthlyReport(sessions, site=portfolio, clock=clock), audit=AuditTrail(sessions),
                     handovers=handovers, approvals=ApprovalService(sessions, clock, tasks),
                     exceptions=ExceptionService(sessions, clock, tasks, portfolio))
    auth.create_user("tech-a", PASSWORD, roles=["technician"], estates=[A])
    auth.create_user("sup-a", PASSWORD, roles=["supervisor"], estates=[A])
    writers = {A: auth.get_by_username("tech-a"),
               B: auth.create_user("tech-b", PASSWORD, roles=["technician"], estates=[B])}
    task_of: dict[str, int] = {}
    for estate in (A, B):
        alarms.apply(AlarmEvent(AlarmAction.RAISED, AlarmKey("dom-p1", "dry_run", estate), Severity.MAJOR,
                                clock.now(), "dom", Text(zh="干转", en="dry run")))
        writer = writers[estate]
        assert writer is not None
        handovers.submit(writer, "dom", None, notes=f"{estate} shift notes", estate=estate)
    for alarm in alarms.list_alarms()[0]:
        task = alarms.task_for(alarm.id)
        assert task is not None
        task_of[alarm.estate] = task.id
    lead = auth.create_user("sup-org", PASSWORD, roles=["supervisor"])
    for estate, writer in writers.items():  # each estate's task goes to its own technician
        assert writer is not None
        tasks.assign(task_of[estate], lead, [writer.id])
    with serving(ctx, store, ["tech-a", "sup-a"]) as served:
        now = clock.now()
        served.call(store.write([Reading(f"{A}/dom-header-pressure", now, 0.31),
                                 Reading(f"{B}/dom-header-pressure", now, 0.52)]))
        yield TwoEstates(served, task_of)
    engine.dispose()


def _open(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#page-title")).to_be_visible()
    expect(page.locator(".loading")).to_have_count(0)


def _words_of_b() -> list[str]:
    return [B, B_NAME.zh, B_NAME.en, f"{B} shift notes", "tech-b"]


@pytest.mark.parametrize("english", [False, True], ids=["zh", "en"])
def test_a_technician_of_estate_a_sees_only_estate_a_on_every_page(browser: Browser, two_estates: TwoEstates,
                                                                  english: bool) -> None:
    errors: list[str] = []
    page = two_estates.served.page(browser, "tech-a", errors, english=english)
    _open(page, two_estates.url + "/")
    expect(page).to_have_url(re.compile(r"#/tasks$"))
    # Every page the UI offers this person: the header's links, the "more" menu's included.
    hrefs = page.eval_on_selector_all(
        "header a[href^='#/']", "links => [...new Set(links.map(a => a.getAttribute('href')))]")
    pages = [h for h in hrefs if h not in ("#/sync",) and not h.startswith("#/login")]
    assert {"#/tasks", "#/alarms", "#/handover", "#/labels", "#/calendar"} <= set(pages), pages
    assert "#/centre" not in pages  # one estate in scope: no monitoring centre
    for href in pages:
        _open(page, f"{two_estates.url}/{href}")
        page.wait_for_load_state("networkidle")
        text = page.locator("body").inner_text()
        for word in _words_of_b():
            assert word not in text, (href, word)
        assert page.locator("select[name*='estate'], select[id*='estate']").count() == 0, href
    # Its own things are there: A's task on the task list, A's handover notes, A's name in the header.
    _open(page, f"{two_estates.url}/#/tasks")
    expect(page.locator(f"[data-task-id='{two_estates.tasks[A]}']")).to_be_visible()
    expect(page.locator(f"[data-task-id='{two_estates.tasks[B]}']")).to_have_count(0)
    _open(page, f"{two_estates.url}/#/handover")
    expect(page.locator("main")).to_contain_text("Handover #" if english else "交接班 #")
    expect(page.locator("main")).not_to_contain_text("tech-b")  # B's staff are not A's colleagues
    assert errors == []


def test_estate_bs_task_room_sensor_label_and_calendar_are_a_404_by_url(browser: Browser,
                                                                      two_estates: TwoEstates) -> None:
    errors: list[str] = []
    page = two_estates.served.page(browser, "tech-a", errors)
    # B's task opened by its address: the page says it is not found, as for a task that never was.
    _open(page, f"{two_estates.url}/#/task/{two_estates.tasks[B]}")
    theirs = page.locator("main").inner_text()
    _open(page, f"{two_estates.url}/#/task/999999")
    never = page.locator("main").inner_text()
    assert re.sub(r"\d+", "N", theirs) == re.sub(r"\d+", "N", never)
    _open(page, f"{two_estates.url}/#/task/{two_estates.tasks[A]}")
    expect(page.locator(f".task-detail[data-task-id='{two_estates.tasks[A]}']")).to_contain_text("1号生活泵")
    # The same addresses the pages use, from the signed-in browser: B is a 404, A is there.
    month = datetime.now(UTC).strftime("%Y-%m")
    addresses = [
        "/api/tasks/{task}",
        "/api/estates/{estate}",
        "/api/rooms/dom?estate={estate}",
        "/api/estates/{estate}/rooms/dom/latest",
        "/api/sensors/dom-header-pressure/history?start=1767000000&end=1768000000&step=3600&estate={estate}",
        "/api/calendar?estate={estate}",
        "/label/dom-p1?estate={estate}",
        "/labels?estate={estate}",
    ]
    for address in addresses:
        theirs_url = address.format(task=two_estates.tasks[B], estate=B)
        mine_url = address.format(task=two_estates.tasks[A], estate=A)
        assert page.request.get(two_estates.url + theirs_url).status == 404, theirs_url
        assert page.request.get(two_estates.url + mine_url).status == 200, mine_url
    # Monthly reports are a supervisor's: B's is a 404 to A's supervisor, A's is there.
    supervisor = two_estates.served.page(browser, "sup-a", errors)
    _open(supervisor, f"{two_estates.url}/#/monthly")
    report = f"{two_estates.url}/api/reports/monthly/{month}?estate="
    assert supervisor.request.get(report + B).status == 404
    assert supervisor.request.get(report + A).status == 200
    text = supervisor.locator("body").inner_text()
    for word in _words_of_b():
        assert word not in text, word
    assert errors == []

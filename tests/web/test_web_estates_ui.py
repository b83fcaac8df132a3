"""The web UI of a whole organisation in Chromium (issue 15): a supervisor of every estate creates a task for
the estate they choose from the task board (its rooms and checklists are that estate's, and the task lands
there), a supervisor of one estate sees the form as before; the alarm list over every estate names each
alarm's estate in a column, which goes when one estate is chosen; the monitoring centre and the portfolio
report fit a phone's width; rows of every estate (alarm list, task board, alarm and task pages) show their own
estate's room and equipment names, not the loaded site's.

Two estates served by the real API in-process (uvicorn on a free port, SQLite): A is the example site, B a
copy of it under another id, name, region and time zone whose rooms and equipment are named apart from
A's (the ids are the same); each has an alarm on the same pump.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.site import Equipment, Severity, Site, Text
from pumpwatch.sitefile import load_site
from tests.support.state import PASSWORD
from tests.web.axe import serious_violations
from tests.web.harness import PHONE
from tests.web.inprocess import Served, deployment, serving

pytestmark = pytest.mark.e2e
EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
A, B = "harbour-view", "twin-towers"
B_NAME = Text(zh="双子塔花园", en="Twin Towers Gardens")
B_ZONE = "Asia/Urumqi"  # two hours behind A's (Asia/Shanghai)
USERS = ["sup-org", "sup-a", "director", "op-org", "tech-a"]


@dataclass
class Estates:
    served: Served
    a: Site
    b: Site
    alarms: dict[str, int]  # estate -> its alarm

    @property
    def url(self) -> str:
        return self.served.url

    def api(self, username: str) -> httpx.Client:
        """An HTTP client acting as `username` (session cookie and CSRF header, as the web UI sends them)."""
        jar = self.served.cookies[username]
        return httpx.Client(base_url=self.url, cookies=jar, headers={"X-CSRF-Token": jar["pumpwatch_csrf"]},
                            timeout=10)


def _of_b(name: Text) -> Text:
    return Text(zh=f"双子塔{name.zh}", en=f"Twin {name.en}")


def _twin(site: Site) -> Site:
    """B: the example site under another id, name and region, its rooms and equipment named as B's."""
    def named(item: Equipment) -> Equipment:
        return item.model_copy(update={"name": _of_b(item.name or Text(zh=item.id, en=item.id))})

    rooms = tuple(room.model_copy(update={
        "name": _of_b(room.name), "equipment": tuple(map(named, room.equipment))}) for room in site.rooms)
    header = site.site.model_copy(update={"id": B, "name": B_NAME, "region": "east", "timezone": B_ZONE})
    return site.model_copy(update={"site": header, "rooms": rooms})


@pytest.fixture(scope="module")
def estates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estates]:
    site = load_site(EXAMPLE)
    twin = _twin(site)
    built = deployment(tmp_path_factory.mktemp("web-estates-ui"), site, twin)
    auth, alarms, clock = built.ctx.auth, built.ctx.alarms, built.ctx.clock
    auth.create_user("sup-org", PASSWORD, roles=["supervisor"])
    auth.create_user("sup-a", PASSWORD, roles=["supervisor"], estates=[A])
    auth.create_user("director", PASSWORD, roles=["director"])
    auth.create_user("op-org", PASSWORD, roles=["operator"])
    auth.create_user("tech-a", PASSWORD, roles=["technician"], estates=[A])
    for estate, severity in ((A, Severity.MAJOR), (B, Severity.CRITICAL)):
        alarms.apply(AlarmEvent(AlarmAction.RAISED, AlarmKey("dom-p1", "dry_run", estate), severity,
                                clock.now(), "dom", Text(zh="干转", en="dry run")))
    alarm_of = {alarm.estate: alarm.id for alarm in alarms.list_alarms()[0]}
    with serving(built.ctx, built.store, USERS) as served:
        yield Estates(served, site, twin, alarm_of)
    built.engine.dispose()


def _open(browser: Browser, estates: Estates, user: str, path: str, errors: list[str], *,
          phone: bool = False, english: bool = False) -> Page:
    """`path` opened by `user` on a desktop, or on a phone (390 x 844, touch, as test_web_phone.py)."""
    if phone:
        options: dict[str, Any] = {"viewport": PHONE, "device_scale_factor": 2, "is_mobile": True,
                                   "has_touch": True, "locale": "zh-CN", "timezone_id": "Asia/Shanghai"}
        context = browser.new_context(**options)
        context.set_default_timeout(30_000)
        if english:
            context.add_init_script("localStorage.setItem('pumpwatch.lang', 'en')")
        context.add_cookies([{"name": k, "value": v, "url": estates.url}
                             for k, v in estates.served.cookies[user].items()])
        page = context.new_page()
        page.on("pageerror", lambda err: errors.append(str(err)))
    else:
        page = estates.served.page(browser, user, errors, english=english)
    page.goto(estates.url + path)
    expect(page.locator("#page-title")).to_be_visible()
    expect(page.locator(".loading")).to_have_count(0)
    return page


def _options(page: Page, selector: str) -> list[str]:
    texts: list[str] = page.locator(f"{selector} option").evaluate_all("os => os.map(o => o.textContent)")
    return texts


def _created(page: Page, estates: Estates, user: str) -> dict[str, Any]:
    """The task the form just created, as the API answers for it."""
    created = page.locator("[data-created-task]")
    expect(created).to_be_visible()
    with estates.api(user) as api:
        answer = api.get(f"/api/tasks/{created.get_attribute('data-created-task')}")
    assert answer.status_code == 200, answer.text
    task: dict[str, Any] = answer.json()
    return task


def test_a_supervisor_of_every_estate_creates_a_task_in_the_estate_they_choose(
        browser: Browser, estates: Estates, screenshot: Callable[[Page, str], Path]) -> None:
    errors: list[str] = []
    page = _open(browser, estates, "sup-org", "/#/taskboard", errors)  # every estate's board
    page.click("#new-task")
    form = page.locator("form.create-task")
    expect(page.locator("#new-estate")).to_be_focused()
    assert _options(page, "#new-estate") == ["请选择项目", estates.a.site.name.zh, B_NAME.zh]
    assert _options(page, "#new-room") == ["不限泵房"]  # no estate yet: no rooms to offer
    form.locator("button[type=submit]").click()  # the estate is asked for first
    expect(form.locator(".field-error")).to_have_text("请选择任务所属的项目。")
    expect(page.locator("#new-estate")).to_be_focused()

    # B chosen: B's rooms and B's checklists, the title suggested from B's room.
    page.select_option("#new-estate", B)
    room = estates.b.rooms[0]
    expect(page.locator("#new-room")).to_contain_text(room.name.zh)
    assert room.name.zh in _options(page, "#new-room")
    assert estates.a.rooms[0].name.zh not in _options(page, "#new-room")
    plan = next(p for p in estates.b.plans.effective() if p.checklist)
    assert plan.name is not None
    page.select_option("#new-template", plan.id)
    page.select_option("#new-room", room.id)
    expect(page.locator("#new-title-zh")).to_have_value(f"{plan.name.zh}：{room.name.zh}")
    assert serious_violations(page) == []
    screenshot(page, "taskboard-new-task-estates-desktop")
    form.locator("button[type=submit]").click()
    task = _created(page, estates, "sup-org")
    assert (task["estate"], task["room"]) == (B, room.id)
    assert len(task["checklist"]) == len(plan.checklist)
    expect(page.locator(f'.taskboard tr[data-task-id="{task["id"]}"] .where')).to_contain_text(B_NAME.zh)

    # The board of A: the form is A's, named, with no estate to choose.
    page.goto(f"{estates.url}/#/taskboard?estate={A}")
    expect(page.locator(".loading")).to_have_count(0)
    page.click("#new-task")
    expect(page.locator("[data-new-estate]")).to_have_attribute("data-new-estate", A)
    expect(page.locator("[data-new-estate]")).to_contain_text(estates.a.site.name.zh)
    expect(page.locator("#new-estate")).to_have_count(0)
    assert estates.a.rooms[0].name.zh in _options(page, "#new-room")
    page.fill("#new-title-zh", "检查A的泵")
    page.locator("form.create-task button[type=submit]").click()
    assert _created(page, estates, "sup-org")["estate"] == A
    assert errors == []


def test_a_supervisor_of_one_estate_sees_the_form_as_before(browser: Browser, estates: Estates) -> None:
    errors: list[str] = []
    page = _open(browser, estates, "sup-a", "/#/taskboard", errors)
    page.click("#new-task")
    expect(page.locator("form.create-task")).to_be_visible()
    expect(page.locator("#new-estate")).to_have_count(0)
    expect(page.locator("[data-new-estate]")).to_have_count(0)
    assert _options(page, "#new-room") == ["不限泵房", *(r.name.zh for r in estates.a.rooms)]
    expect(page.locator("#new-template")).to_be_focused()
    page.select_option("#new-room", estates.a.rooms[0].id)
    page.fill("#new-title-zh", "更换压力表")
    page.locator("form.create-task button[type=submit]").click()
    task = _created(page, estates, "sup-a")
    assert (task["estate"], task["room"]) == (A, estates.a.rooms[0].id)
    assert errors == []


def test_the_alarm_list_over_every_estate_names_each_alarms_estate(
        browser: Browser, estates: Estates, screenshot: Callable[[Page, str], Path]) -> None:
    errors: list[str] = []
    page = _open(browser, estates, "director", "/#/alarms", errors)
    rows = page.locator("table.alarms tbody tr[data-alarm-id]")
    expect(rows).to_have_count(2)
    header = page.locator("table.alarms thead th")
    expect(header.nth(2)).to_have_text("项目")
    expect(page.locator("table.alarms th[data-col=estate]")).to_have_count(1)
    names = {estates.alarms[A]: estates.a.site.name.zh, estates.alarms[B]: B_NAME.zh}
    for alarm, name in names.items():
        cell = page.locator(f'tr[data-alarm-id="{alarm}"] td').nth(2)  # the column under the header
        expect(cell).to_have_text(name)
    assert serious_violations(page) == []
    screenshot(page, "alarms-every-estate-desktop")

    page.select_option("#f-estate", A)
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-alarm-id", str(estates.alarms[A]))
    expect(page.locator("table.alarms th[data-col=estate]")).to_have_count(0)
    expect(page.locator("table.alarms td[data-estate]")).to_have_count(0)
    page.select_option("#f-estate", "")
    expect(page.locator("table.alarms td[data-estate]")).to_have_count(2)

    # No alarm of this filter: the empty row spans the extra column too.
    page.select_option("#f-sev", "minor")
    empty = page.locator("table.alarms tbody td.empty")
    expect(empty).to_have_attribute("colspan", "7")

    # One estate in scope: no column.
    single = _open(browser, estates, "tech-a", "/#/alarms", errors)
    expect(single.locator("table.alarms tbody tr[data-alarm-id]")).to_have_count(1)
    expect(single.locator("table.alarms th[data-col=estate]")).to_have_count(0)
    assert errors == []


def _fits_the_width(page: Page) -> None:
    """No horizontal scroll of the page itself (a wide table scrolls inside its own box)."""
    widths = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths


def test_the_centre_and_the_portfolio_fit_a_phone(
        browser: Browser, estates: Estates, screenshot: Callable[[Page, str], Path]) -> None:
    errors: list[str] = []
    centre = _open(browser, estates, "op-org", "/#/centre", errors, phone=True)
    tiles = centre.locator("#centre-estates [data-estate]")
    expect(tiles).to_have_count(2)
    expect(tiles.first).to_be_in_viewport()
    _fits_the_width(centre)
    region = centre.locator("#centre-region")
    region.scroll_into_view_if_needed()
    expect(region).to_be_in_viewport()
    region.select_option("east")
    expect(tiles).to_have_count(1)
    expect(tiles.first).to_have_attribute("data-estate", B)
    _fits_the_width(centre)
    centre.select_option("#centre-region", "")
    expect(tiles).to_have_count(2)
    assert serious_violations(centre) == []
    screenshot(centre, "centre-phone-zh")
    # Two tiles a row on a phone: the first row holds both estates.
    boxes = tiles.evaluate_all("ts => ts.map(t => Math.round(t.getBoundingClientRect().top))")
    assert boxes[0] == boxes[1], boxes

    # Down to B's room and its sensors' table: still the phone's width.
    centre.locator(f'#centre-estates [data-estate="{B}"]').click()
    room = estates.b.rooms[0]
    centre.locator(f'#centre-rooms [data-room="{room.id}"]').click()
    expect(centre.locator("#centre-sensors tbody tr").first).to_be_visible()
    _fits_the_width(centre)

    portfolio = _open(browser, estates, "director", "/#/portfolio", errors, phone=True)
    rows = portfolio.locator("#portfolio-table tbody tr[data-estate]")
    expect(rows).to_have_count(2)
    expect(rows.first).to_be_in_viewport()
    expect(rows.first.locator("th a")).to_be_in_viewport()  # the estate's name, the row's heading
    _fits_the_width(portfolio)
    wrap = portfolio.locator(".portfolio-slot .table-wrap")
    box = wrap.evaluate("w => [w.scrollWidth, w.clientWidth, getComputedStyle(w).overflowX]")
    assert box[2] == "auto", box  # the table's own scroll, not the page's
    assert box[0] > box[1], box  # the figures go on past the phone's width ...
    _scrolled_to_the_last_figure(portfolio)
    expect(portfolio.locator("#portfolio-month")).to_be_in_viewport()  # the month, above the table
    assert serious_violations(portfolio) == []
    screenshot(portfolio, "portfolio-phone-zh")

    english = _open(browser, estates, "director", "/#/portfolio", errors, phone=True, english=True)
    expect(english.locator("#portfolio-table thead")).to_contain_text("Rank")
    _fits_the_width(english)
    _scrolled_to_the_last_figure(english)
    screenshot(english, "portfolio-phone-en")
    assert errors == []


def _scrolled_to_the_last_figure(page: Page) -> None:
    """Scrolled to the last figure, the rank and the estate's name stay in sight, side by side."""
    page.locator(".portfolio-slot .table-wrap").evaluate("w => { w.scrollLeft = w.scrollWidth; }")
    expect(page.locator("[data-cell=open_critical]").first).to_be_in_viewport()
    row = page.locator("#portfolio-table tbody tr[data-estate]").first
    rank, name = (row.locator(cell).bounding_box() for cell in (".col-rank", ".col-estate"))
    assert rank is not None
    assert name is not None
    assert rank["x"] >= 0, rank
    assert rank["x"] + rank["width"] <= name["x"] + 1, (rank, name)
    expect(row.locator("th a")).to_be_in_viewport()


ROOM, ASSET = "dom", "dom-p1"  # where both estates' alarms are: the same ids in A and B


def _names(site: Site) -> tuple[str, str]:
    """The Chinese names of ROOM and ASSET in `site`."""
    room = next(r for r in site.rooms if r.id == ROOM)
    item = next(e for e in room.equipment if e.id == ASSET)
    assert item.name is not None
    return room.name.zh, item.name.zh


def _fact(page: Page, block: str, label: str) -> Any:
    """The value beside `label` in the facts list of `block` (the alarm's or the task's page)."""
    return page.locator(f"xpath=//*[contains(@class,'{block}')]//dl[contains(@class,'facts')]"
                        f"/dt[normalize-space()='{label}']/following-sibling::dd[1]")


def test_rows_of_every_estate_show_their_own_estates_room_and_equipment_names(
        browser: Browser, estates: Estates) -> None:
    names = {A: _names(estates.a), B: _names(estates.b)}
    assert names[A][0] != names[B][0]
    assert names[A][1] != names[B][1]
    estate_name = {A: estates.a.site.name.zh, B: B_NAME.zh}
    errors: list[str] = []
    page = estates.served.page(browser, "sup-org", errors)
    sites: list[str] = []
    page.on("request", lambda r: sites.append(r.url) if "/api/site?" in r.url else None)
    page.goto(estates.url + "/#/alarms")  # every estate's; a new device loads the first estate's site

    rows = page.locator("table.alarms tbody tr[data-alarm-id]")
    expect(rows).to_have_count(2)
    assert sites[0].endswith(f"/api/site?estate={A}"), sites  # the loaded site is A's
    for estate, (room, item) in names.items():
        cells = page.locator(f'tr[data-alarm-id="{estates.alarms[estate]}"] td')  # severity, message, estate
        expect(cells.nth(2)).to_have_text(estate_name[estate])
        expect(cells.nth(3)).to_have_text(room)
        expect(cells.nth(4)).to_have_text(item)

    # B's alarm on its own page, the loaded site still A's.
    page.goto(f"{estates.url}/#/alarm/{estates.alarms[B]}")
    expect(_fact(page, "alarm-detail", "泵房")).to_have_text(names[B][0])
    expect(_fact(page, "alarm-detail", "设备")).to_have_text(names[B][1])

    # A task in each estate on the same pump: each row of the board over every estate with its own names.
    task_of: dict[str, int] = {}
    with estates.api("sup-org") as api:
        for estate in (A, B):
            body = {"title": {"zh": "检查1号泵", "en": "Check pump 1"}, "kind": "corrective",
                    "room": ROOM, "asset": ASSET}
            answer = api.post(f"/api/tasks?estate={estate}", json=body)
            assert answer.status_code == 201, answer.text
            task_of[estate] = answer.json()["id"]
    page.goto(estates.url + "/#/taskboard")
    expect(page.locator(".loading")).to_have_count(0)
    for estate, (room, item) in names.items():
        expect(page.locator(f'.taskboard tr[data-task-id="{task_of[estate]}"] .where')).to_have_text(
            f"{estate_name[estate]} · {item} · {room}")

    # B's task opened from the board: B's names on its page.
    page.locator(f'.taskboard tr[data-task-id="{task_of[B]}"] a[href="#/task/{task_of[B]}"]').click()
    expect(page.locator(f'.task-detail[data-task-id="{task_of[B]}"]')).to_be_visible()
    expect(_fact(page, "task-detail", "设备")).to_have_text(names[B][1])
    expect(_fact(page, "task-detail", "泵房")).to_have_text(names[B][0])
    assert errors == []


def test_the_audit_trail_over_every_estate_shows_the_chosen_estates_records(
        browser: Browser, estates: Estates, screenshot: Callable[[Page, str], Path]) -> None:
    errors: list[str] = []
    page = _open(browser, estates, "director", "/#/audit?entity=alarm", errors)
    alarm_rows = page.locator("table.audit tbody tr[data-entity=alarm]")
    links = alarm_rows.locator("a[data-entity-link]")
    expect(alarm_rows).to_have_count(2)  # each estate's alarm was raised
    assert _options(page, "#a-estate") == ["全部项目", estates.a.site.name.zh, B_NAME.zh]
    page.select_option("#a-estate", B)
    expect(alarm_rows).to_have_count(1)
    screenshot(page, "audit-estate-desktop")
    expect(links.first).to_have_attribute("href", f"#/alarm/{estates.alarms[B]}")
    csv = page.locator("#audit-csv")
    expect(csv).to_have_attribute("href", f"/api/audit?format=csv&entity=alarm&estate={B}")
    page.select_option("#a-estate", A)
    expect(links.first).to_have_attribute("href", f"#/alarm/{estates.alarms[A]}")
    # The choice is in the address a colleague is sent, and a report's row links to that estate's report.
    kept = _open(browser, estates, "director", f"/#/audit?entity=alarm&estate={B}", errors)
    expect(kept.locator("#a-estate")).to_have_value(B)
    expect(kept.locator("table.audit tbody tr[data-entity=alarm]")).to_have_count(1)
    hrefs = kept.evaluate("""async () => {
        const {entityHref} = await import('/static/audit.js');
        return [entityHref('report', 'twin-towers:2026-11'), entityHref('report', '2026-11'),
                entityHref('report', 'not-a-month')];
    }""")
    assert hrefs == [f"#/monthly/2026-11?estate={B}", "#/monthly/2026-11", None]
    phone = _open(browser, estates, "director", f"/#/audit?entity=alarm&estate={B}", errors, phone=True,
                  english=True)
    expect(phone.locator("table.audit tbody tr[data-entity=alarm]")).to_have_count(1)
    screenshot(phone, "audit-estate-phone-en")
    # One estate in scope: no choice to make.
    single = _open(browser, estates, "sup-a", "/#/audit", errors)
    expect(single.locator("#a-estate")).to_have_count(0)
    assert errors == []


def test_the_calendar_of_an_estate_reads_its_days_in_the_estates_own_time_zone(
        browser: Browser, estates: Estates, screenshot: Callable[[Page, str], Path]) -> None:
    errors: list[str] = []
    page = _open(browser, estates, "director", f"/#/calendar?estate={B}&month=2026-12", errors)
    explain = page.locator("p[data-zone]")
    expect(explain).to_have_attribute("data-zone", B_ZONE)
    expect(explain).to_contain_text(B_ZONE)
    # The month's first instant is midnight in B's zone: 2026-11-30 18:00 UTC, not A's 16:00.
    first = page.evaluate("""async () => {
        const {monthBounds} = await import('/static/sitetime.js');
        return monthBounds('2026-12').start.toISOString();
    }""")
    assert first == "2026-11-30T18:00:00.000Z"
    screenshot(page, "calendar-estate-zone-desktop")
    phone = _open(browser, estates, "director", f"/#/calendar?estate={B}&month=2026-12", errors, phone=True,
                  english=True)
    expect(phone.locator("p[data-zone]")).to_contain_text(B_ZONE)
    screenshot(phone, "calendar-estate-zone-phone-en")
    page.select_option("#cal-estate", A)
    expect(explain).to_have_attribute("data-zone", "Asia/Shanghai")
    # Leaving the page gives the site's zone back to the others.
    page.goto(f"{estates.url}/#/alarms")
    expect(page.locator("table.alarms")).to_be_visible()
    zone = page.evaluate("async () => (await import('/static/i18n.js')).getTimeZone()")
    assert zone == estates.a.site.timezone
    assert errors == []

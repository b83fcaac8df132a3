"""The monitoring centre in Chromium over 200 generated estates (simulators/fleet.py): the tiles load most
urgent first, filter by region, turn red when an alarm is raised, drill down estate -> room -> sensor (the
room's readings live from its own subscription), keyboard and axe clean in both languages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, Page, expect

from api.context import ApiContext
from api.latest_cache import LatestCache
from collector.stores.embedded import EmbeddedStore
from maintenance.alarms import AlarmService
from maintenance.approvals import ApprovalService
from maintenance.auth import AuthService
from maintenance.db import make_engine, session_factory, upgrade
from maintenance.tasks import TaskService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import SystemClock
from pumpwatch.portfolio import Portfolio
from pumpwatch.readings import Reading
from pumpwatch.site import Severity, Site, Text
from simulators.fleet import fleet_sites
from tests.support.state import FAST_HASHER, PASSWORD
from tests.web.axe import serious_violations
from tests.web.harness import PHONE
from tests.web.inprocess import Served, serving

pytestmark = pytest.mark.e2e
ESTATES = 200
T = TypeVar("T")


@dataclass
class Centre:
    served: Served
    sites: list[Site]
    alarms: AlarmService

    @property
    def url(self) -> str:
        return self.served.url

    @property
    def ctx(self) -> ApiContext:
        return self.served.ctx

    def publish(self, readings: list[Reading]) -> None:
        """Readings on the live bus, as the collector puts them there."""
        self.served.publish(readings)

    def alarm(self, estate: str, room: str, asset: str, severity: Severity) -> None:
        self.alarms.apply(AlarmEvent(AlarmAction.RAISED, AlarmKey(asset, "dry_run", estate), severity,
                                     self.ctx.clock.now(), room, Text(zh="干转", en="dry run")))


async def _keep_fresh(latest: LatestCache, catalog: SensorCatalog, clock: SystemClock) -> None:
    """Every device reports: a reading of every sensor every 5 s (each stays fresh for 30 s)."""
    keys = [info.key for info in catalog]
    while True:
        now = clock.now()
        latest.update([Reading(key, now, 0.5) for key in keys])
        await asyncio.sleep(5)


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[Centre]:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    upgrade(engine)
    sessions = session_factory(engine)
    clock = SystemClock()
    sites = [Site.model_validate(doc) for doc in fleet_sites(ESTATES, 15)]
    portfolio = Portfolio.of(*sites)
    catalog = SensorCatalog(portfolio)
    store = EmbeddedStore(tmp_path / "series.db", catalog)
    auth = AuthService(sessions, clock, hasher=FAST_HASHER)
    tasks = TaskService(sessions, clock)
    alarms = AlarmService(sessions, clock, tasks)
    latest = LatestCache(store)
    ctx = ApiContext(site=portfolio.first, catalog=catalog, store=store, readings=LiveBus(),
                     alarm_events=LiveBus(), auth=auth, tasks=tasks, alarms=alarms, clock=clock,
                     attachments_dir=tmp_path / "files", latest=latest,
                     approvals=ApprovalService(sessions, clock, tasks))
    auth.create_user("centre-operator", PASSWORD, roles=["operator"])

    def background() -> list[Coroutine[Any, Any, None]]:
        return [_keep_fresh(latest, catalog, clock), latest.run(ctx.readings)]

    with serving(ctx, store, ["centre-operator"], background=background) as served:
        yield Centre(served, sites, alarms)
    engine.dispose()


def _page(browser: Browser, centre: Centre, path: str, errors: list[str], english: bool = False) -> Page:
    page = centre.served.page(browser, "centre-operator", errors, english=english)
    page.goto(centre.url + path)
    expect(page.locator("#page-title")).to_be_visible()
    expect(page.locator(".loading")).to_have_count(0)
    return page


def test_the_monitoring_centre_shows_200_estates_filters_updates_and_drills_down(
        browser: Browser, centre: Centre, screenshot: Callable[[Page, str], Path]) -> None:
    errors: list[str] = []
    first, quiet = centre.sites[3], centre.sites[0]
    centre.alarm(first.site.id, first.rooms[0].id, "pump-a", Severity.CRITICAL)
    for site in centre.sites[10:14]:
        centre.alarm(site.site.id, site.rooms[0].id, "pump-b", Severity.MAJOR)
    page = _page(browser, centre, "/#/centre", errors)
    tiles = page.locator("#centre-estates [data-estate]")
    expect(tiles).to_have_count(ESTATES)
    expect(tiles.first).to_have_attribute("data-estate", first.site.id)
    expect(tiles.first).to_have_attribute("data-colour", "red")
    expect(tiles.first).to_contain_text("紧急")
    expect(page.locator("#centre-totals")).to_contain_text(f"共 {ESTATES} 个项目：紧急 1，注意 4")
    expect(page.locator("[data-nav=centre]")).to_be_visible()
    assert serious_violations(page) == []
    screenshot(page, "centre-operator-desktop")

    # The region filter: only that region's estates, in the address.
    region = quiet.site.region
    assert region is not None
    page.select_option("#centre-region", region)
    expect(page).to_have_url(f"{centre.url}/#/centre?region={region}")
    expect(tiles).to_have_count(sum(1 for s in centre.sites if s.site.region == region))

    # A critical alarm: the overview stream turns the estate red and puts it first.
    room = quiet.rooms[-1]
    centre.alarm(quiet.site.id, room.id, "pump-c", Severity.CRITICAL)
    expect(tiles.first).to_have_attribute("data-estate", quiet.site.id, timeout=30_000)
    expect(tiles.first).to_have_attribute("data-colour", "red")

    # Drill down with the keyboard: the estate, its rooms, a room's sensors, a sensor's chart.
    tiles.first.focus()
    page.keyboard.press("Enter")
    rooms = page.locator("#centre-rooms [data-room]")
    expect(rooms).to_have_count(len(quiet.rooms))
    expect(page.locator(f'#centre-rooms [data-room="{room.id}"]')).to_have_attribute("data-colour", "red")
    page.locator(f'#centre-rooms [data-room="{room.id}"]').click()
    sensors = [info for info in centre.ctx.catalog.in_estate(quiet.site.id) if info.room == room.id]
    expect(page.locator("#centre-sensors tbody tr")).to_have_count(len(sensors))
    pressure = next(i for i in sensors if i.kind.value == "pressure")
    expect(page.locator('.view[data-live="open"]')).to_have_count(1)  # subscribed: what follows is live
    now = centre.ctx.clock.now()
    centre.publish([Reading(pressure.key, now, 0.432)])
    expect(page.locator(f'#centre-sensors [data-value="{pressure.id}"]')).to_contain_text("0.432")
    history = [Reading(pressure.key, now - 60 * i, 0.4 + i / 1000) for i in range(60)]
    centre.served.call(centre.ctx.store.write(history))
    page.locator(f'#centre-sensors tr[data-sensor="{pressure.id}"] a').click()
    expect(page.locator("#centre-chart svg")).to_be_visible()
    assert serious_violations(page) == []
    screenshot(page, "centre-room-desktop")

    # The room's drawing, of this estate (not the first one loaded): its page and the board show it.
    page.locator("#centre-mimic").click()
    expect(page).to_have_url(f"{centre.url}/#/room/{room.id}?estate={quiet.site.id}")
    expect(page.locator(f'.room-mimic[data-room="{room.id}"]')).to_be_visible()
    expect(page.locator("#page-title")).to_contain_text(room.name.zh)
    expect(page.locator('[role="alert"].error')).to_have_count(0)
    page.locator("a.back").click()
    expect(page).to_have_url(f"{centre.url}/#/board?estate={quiet.site.id}")
    expect(page.locator("#board-estate")).to_have_value(quiet.site.id)
    expect(page.locator(".rooms > .room[data-room]")).to_have_count(len(quiet.rooms))
    expect(page.locator('[role="alert"].error')).to_have_count(0)
    other = next(s for s in centre.sites if s.site.id != quiet.site.id)
    page.select_option("#board-estate", other.site.id)
    expect(page).to_have_url(f"{centre.url}/#/board?estate={other.site.id}")
    expect(page.locator(".rooms > .room[data-room]")).to_have_count(len(other.rooms))
    expect(page.locator('[role="alert"].error')).to_have_count(0)

    # English: the same pages, the words in English.
    english = _page(browser, centre, f"/#/centre/{quiet.site.id}", errors, english=True)
    expect(english.locator("#centre-estate-summary")).to_contain_text("Urgent")
    expect(english.locator("#centre-rooms [data-room]")).to_have_count(len(quiet.rooms))
    assert serious_violations(english) == []
    screenshot(english, "centre-estate-desktop-en")
    assert errors == []


def test_the_monitoring_centre_of_200_estates_fits_a_phone(browser: Browser, centre: Centre) -> None:
    errors: list[str] = []
    context = browser.new_context(viewport={"width": PHONE["width"], "height": PHONE["height"]},
                                  device_scale_factor=2, is_mobile=True, has_touch=True, locale="zh-CN",
                                  timezone_id="Asia/Shanghai")
    context.set_default_timeout(30_000)
    context.add_cookies([{"name": k, "value": v, "url": centre.url}
                         for k, v in centre.served.cookies["centre-operator"].items()])
    page = context.new_page()
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(centre.url + "/#/centre")
    tiles = page.locator("#centre-estates [data-estate]")
    expect(tiles).to_have_count(ESTATES)
    expect(tiles.first).to_be_in_viewport()
    expect(page.locator("#centre-region")).to_be_in_viewport()  # the filter above the tiles, not after 200
    widths = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    # Two tiles a row: 200 estates are 100 rows to scroll through, not 200.
    tops = tiles.evaluate_all("ts => ts.slice(0, 4).map(t => Math.round(t.getBoundingClientRect().top))")
    assert tops[0] == tops[1], tops
    assert tops[2] == tops[3], tops
    assert tops[2] > tops[0], tops
    # The centre operator's bottom bar starts from the centre (the scanner is under "me").
    bar = page.locator("#bottom-nav [data-bottom-nav]")
    expect(bar).to_have_count(4)
    keys = bar.evaluate_all("links => links.map(l => l.dataset.bottomNav)")
    assert keys == ["centre", "board", "alarms", "me"]
    expect(page.locator('#bottom-nav [data-bottom-nav="centre"]')).to_have_attribute("aria-current", "page")
    region = centre.sites[0].site.region
    assert region is not None
    page.select_option("#centre-region", region)
    expect(tiles).to_have_count(sum(1 for s in centre.sites if s.site.region == region))
    widths = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    assert serious_violations(page) == []
    context.close()
    assert errors == []

"""The real API served in-process for browser tests that build their own deployment (several estates,
users of chosen scopes): uvicorn on a free loopback port, its event loop on a thread of its own, and
browser contexts signed in with session cookies issued directly (no sign-in form, so no rate limit)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from playwright.sync_api import Browser, Page
from sqlalchemy import Engine

from api.app import create_app
from api.context import ApiContext
from collector.stores.embedded import EmbeddedStore
from maintenance.alarms import AlarmService
from maintenance.approvals import ApprovalService
from maintenance.audit import AuditTrail
from maintenance.auth import AuthService
from maintenance.db import make_engine, session_factory, upgrade
from maintenance.exceptions import ExceptionService
from maintenance.reports import MonthlyReport
from maintenance.tasks import TaskService
from maintenance.vocab import TokenKind
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import SystemClock
from pumpwatch.portfolio import Portfolio
from pumpwatch.readings import Reading
from pumpwatch.site import Site
from tests.support.state import FAST_HASHER
from tests.web.harness import DESKTOP

T = TypeVar("T")


@dataclass
class Deployment:
    """The API context of several estates on their own SQLite state and embedded series store."""

    ctx: ApiContext
    store: EmbeddedStore
    engine: Engine


def deployment(root: Path, *sites: Site) -> Deployment:
    """`sites` as one deployment under `root` (the first is the default site), every service wired."""
    engine = make_engine(f"sqlite:///{root / 'state.db'}")
    upgrade(engine)
    sessions = session_factory(engine)
    clock = SystemClock()
    portfolio = Portfolio.of(*sites)
    catalog = SensorCatalog(portfolio)
    store = EmbeddedStore(root / "series.db", catalog)
    tasks = TaskService(sessions, clock)
    ctx = ApiContext(site=sites[0], catalog=catalog, store=store, readings=LiveBus(), alarm_events=LiveBus(),
                     auth=AuthService(sessions, clock, hasher=FAST_HASHER), tasks=tasks,
                     alarms=AlarmService(sessions, clock, tasks), clock=clock, attachments_dir=root / "files",
                     reports=MonthlyReport(sessions, site=portfolio, clock=clock),
                     exceptions=ExceptionService(sessions, clock, tasks, portfolio),
                     audit=AuditTrail(sessions), approvals=ApprovalService(sessions, clock, tasks))
    return Deployment(ctx, store, engine)


@dataclass
class Served:
    """The API of `ctx` at `url`, its event loop and the session cookies of the users asked for."""

    url: str
    ctx: ApiContext
    loop: asyncio.AbstractEventLoop
    cookies: dict[str, dict[str, str]]

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's event loop."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(30)

    def publish(self, readings: list[Reading]) -> None:
        """Readings on the live bus, as the collector puts them there."""
        self.loop.call_soon_threadsafe(self.ctx.readings.publish, readings)

    def page(self, browser: Browser, username: str, errors: list[str], *, english: bool = False,
             timeout_ms: int = 30_000) -> Page:
        """A page of a fresh desktop context signed in as `username`; script errors go to `errors`."""
        context = browser.new_context(viewport={"width": DESKTOP["width"], "height": DESKTOP["height"]},
                                      locale="zh-CN", timezone_id="Asia/Shanghai")
        context.set_default_timeout(timeout_ms)
        if english:
            context.add_init_script("localStorage.setItem('pumpwatch.lang', 'en')")
        context.add_cookies([{"name": k, "value": v, "url": self.url}
                             for k, v in self.cookies[username].items()])
        page = context.new_page()
        page.on("pageerror", lambda err: errors.append(str(err)))
        return page


def session_cookies(auth: AuthService, username: str) -> dict[str, str]:
    """The cookies of a fresh web session of `username`."""
    user = auth.get_by_username(username)
    assert user is not None, username
    session = auth.issue_token(user, TokenKind.SESSION)
    assert session.csrf_token is not None
    return {"pumpwatch_session": session.token, "pumpwatch_csrf": session.csrf_token}


@contextmanager
def serving(ctx: ApiContext, store: EmbeddedStore, users: list[str], *,
            background: Callable[[], list[Coroutine[Any, Any, None]]] | None = None) -> Iterator[Served]:
    """Serve `ctx` until the block ends: the store started on the server's loop, `background` coroutines
    (made on that loop) run beside it and are cancelled at the end, sessions issued for `users`."""
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), log_level="warning", lifespan="off"))
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def serve() -> None:
        await store.start()
        running = [asyncio.create_task(work) for work in (background() if background else [])]
        ready.set()
        try:
            await server.serve(sockets=[listening])
        finally:
            for task in running:
                task.cancel()
            await store.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30), "the API did not start"
    try:
        yield Served(f"http://127.0.0.1:{port}", ctx, loop,
                     {name: session_cookies(ctx.auth, name) for name in users})
    finally:
        server.should_exit = True
        loop.call_soon_threadsafe(ctx.shutdown.set)
        thread.join(30)
        loop.close()

"""The API as a service: state database, services, alarm intake, SLA escalation, HTTP server.

Alarm events reach the alarm service through a bounded queue (policy: when full, the event is
logged and counted as dropped; the collector also publishes every event on MQTT at QoS 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import text

from api.app import create_app
from api.context import ApiContext
from api.latest_cache import LatestCache
from maintenance.alarms import AlarmService
from maintenance.approvals import ApprovalService
from maintenance.auth import AuthService
from maintenance.db import make_engine, session_factory, state_url, upgrade
from maintenance.notify import Notifier
from maintenance.reports import MonthlyReport
from maintenance.tasks import TaskService
from pumpwatch.alarm_events import AlarmEvent
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import Clock, SystemClock
from pumpwatch.readings import Reading
from pumpwatch.series import SeriesStore
from pumpwatch.settings import Settings
from pumpwatch.site import Site

log = logging.getLogger(__name__)

EVENT_QUEUE = 10_000
ESCALATE_EVERY = 30.0  # seconds between SLA checks
DEMO_USERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("admin", "管理员 Admin", ("admin",)),
    ("operator", "值班员 Operator", ("operator",)),
    ("tech", "维修技工 Technician", ("technician",)),
    ("tech2", "维修技工二 Technician 2", ("technician",)),
    ("supervisor", "工程主管 Supervisor", ("supervisor",)),
    ("director", "管理处主任 Director", ("director",)),
)


def demo_password(username: str) -> str:
    """The demo login's password (demo only: a production start refuses these)."""
    return f"{username}-demo-2026"


class _Server(uvicorn.Server):
    """Uvicorn without its own signal handlers: the command line owns Ctrl+C and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signals alone."""
        yield


@dataclass
class ApiMetrics:
    """What the API counts."""

    registry: CollectorRegistry
    events_applied: Counter
    events_dropped: Counter


class ApiService:
    """Builds the API over the given store and buses; `run` serves until cancelled."""

    def __init__(self, site: Site, settings: Settings, clock: Clock, store: SeriesStore,
                 readings: LiveBus[Sequence[Reading]], alarm_events: LiveBus[AlarmEvent],
                 registries: Sequence[CollectorRegistry] = ()) -> None:
        self.settings = settings
        cfg = settings.api
        state_dir = settings.collector.state_dir
        url = state_url(settings)
        # Up to 20 connections kept open and 20 more at peaks: anyio runs up to 40 sync routes at once, and
        # with SQLAlchemy's default (5 kept, 10 more) a busy API opened and closed a connection per request.
        pool = {} if url.startswith("sqlite") else {"pool_size": 20, "max_overflow": 20}
        self.engine = make_engine(url, **pool)
        upgrade(self.engine)
        sessions = session_factory(self.engine)
        tasks = TaskService(sessions, clock)
        registry = CollectorRegistry()
        self.metrics = ApiMetrics(
            registry,
            Counter("pumpwatch_alarm_events_applied_total", "Alarm events turned into alarms and tasks",
                    registry=registry),
            Counter("pumpwatch_alarm_events_dropped_total", "Alarm events lost to a full intake queue",
                    registry=registry))
        self.ctx = ApiContext(
            site=site, catalog=SensorCatalog(site), store=store, readings=readings,
            alarm_events=alarm_events, auth=AuthService(sessions, SystemClock()), tasks=tasks,
            alarms=AlarmService(sessions, clock, tasks), clock=clock,
            attachments_dir=cfg.attachments_dir or Path(state_dir) / "attachments",
            secure_cookies=cfg.secure_cookies, registries=[*registries, registry],
            max_upload_bytes=cfg.max_upload_mb * 1024 * 1024, reports=MonthlyReport(sessions, tasks.sla),
            approvals=ApprovalService(sessions, clock, tasks), latest=LatestCache(store))
        self.ctx.health["database"] = self._database_health
        self.notifier = Notifier(settings.notify, registry, site.site.timezone, site.site.name.zh)
        self.app = create_app(self.ctx)
        self._events: asyncio.Queue[AlarmEvent] | None = None
        self.port = cfg.port
        self.server: uvicorn.Server | None = None

    # --- alarm intake ------------------------------------------------------------------------------

    def accept_event(self, event: AlarmEvent) -> None:
        """An alarm-engine listener (call on the event loop's thread)."""
        if self._events is None:
            self._events = asyncio.Queue(EVENT_QUEUE)
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            self.metrics.events_dropped.inc()
            log.error("alarm intake full (%d events): %s %s not applied", EVENT_QUEUE, event.key,
                      event.action.value)

    async def _apply_events(self) -> None:
        if self._events is None:
            self._events = asyncio.Queue(EVENT_QUEUE)
        while True:
            event = await self._events.get()
            try:
                alarm, change = await asyncio.to_thread(self.ctx.alarms.apply_change, event)
                self.metrics.events_applied.inc()
                self.notifier.alarm_changed(change, alarm)
            except Exception:  # the database may be briefly away: retry the event, keep order
                log.exception("applying alarm event %s failed; retrying", event.key)
                await asyncio.sleep(1.0)
                await self._events.put(event)

    async def _escalate(self) -> None:
        while True:
            await asyncio.sleep(ESCALATE_EVERY)
            try:
                for escalation in await asyncio.to_thread(self.ctx.tasks.escalate):
                    log.warning("task escalation: %s", escalation)
                    self.notifier.escalated(escalation)
                if self.ctx.approvals is not None:
                    expired = await asyncio.to_thread(self.ctx.approvals.expire)
                    if expired:
                        log.info("access requests expired: %s", expired)
            except Exception:
                log.exception("SLA escalation check failed")

    # --- users -------------------------------------------------------------------------------------

    def ensure_demo_users(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """Create the demo logins that are missing; returns (username, password, roles)."""
        out = []
        for username, name, roles in DEMO_USERS:
            if self.ctx.auth.get_by_username(username) is None:
                self.ctx.auth.create_user(username, demo_password(username), roles, display_name=name)
            out.append((username, demo_password(username), roles))
        return out

    # --- serving -----------------------------------------------------------------------------------

    def _database_health(self) -> tuple[bool, str]:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True, self.engine.url.get_backend_name()

    async def run(self) -> None:
        """Serve HTTP, apply alarm events and check SLAs until cancelled."""
        cfg = self.settings.api
        config = uvicorn.Config(self.app, host=cfg.host, port=self.port, log_level="warning",
                                lifespan="off", access_log=False,
                                timeout_graceful_shutdown=3)  # live streams never end by themselves
        self.server = _Server(config)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._serve_http(self.server), name="api-http")
                tasks.create_task(self._apply_events(), name="api-alarm-intake")
                tasks.create_task(self._escalate(), name="api-sla")
                tasks.create_task(self.notifier.run(), name="api-notify")
                if self.ctx.latest is not None:
                    tasks.create_task(self.ctx.latest.run(self.ctx.readings), name="api-latest")
        finally:
            self.engine.dispose()

    async def _serve_http(self, server: uvicorn.Server) -> None:
        serving = asyncio.ensure_future(server.serve())
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            self.ctx.shutdown.set()  # live streams end now
            server.should_exit = True  # finish open responses and close the sockets, then stop
            await serving
            raise

    @property
    def url(self) -> str:
        """Where the API listens (the real port once started)."""
        port = self.port
        if self.server is not None and self.server.servers:
            sockets = self.server.servers[0].sockets
            if sockets:
                port = sockets[0].getsockname()[1]
        return f"http://{self.settings.api.host}:{port}"

"""The maintenance state of a process: its services over the state database, alarm intake, SLA checks.

Alarm events reach the alarm service through a bounded queue (policy: when full, the event is
logged and counted as dropped; the collector also publishes every event on MQTT at QoS 1, where a
persistent session keeps them for a process that was away). Events are applied one at a time in
the order they arrived; one that fails because the database is briefly away is retried in place
with backoff, so a later event of the same alarm never overtakes it. One that fails for any other
reason would fail again: it is logged and counted (`pumpwatch_alarm_events_refused_total`) and the
intake goes on.

One maintenance state serves every estate of the deployment: each record names its estate, an event
without one (made before estates) is taken as the only estate's, and `set_portfolio` takes the
estates' site files after a reload (their SLA limits, switches, rooms and reports).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from maintenance.alarms import AlarmService
from maintenance.approvals import ApprovalService
from maintenance.audit import AuditTrail
from maintenance.auth import AuthService
from maintenance.db import session_factory
from maintenance.exceptions import ExceptionService
from maintenance.handover import HandoverService
from maintenance.notify import Notifier
from maintenance.reports import MonthlyReport
from maintenance.task_flow import SlaPolicy
from maintenance.tasks import TaskService
from pumpwatch.alarm_events import AlarmEvent
from pumpwatch.backoff import Backoff
from pumpwatch.clock import Clock, SystemClock
from pumpwatch.portfolio import Portfolio, as_portfolio
from pumpwatch.settings import Settings
from pumpwatch.site import Site

log = logging.getLogger(__name__)

EVENT_QUEUE = 10_000
TRANSIENT = (DBAPIError, OSError, TimeoutError)  # failures that retrying can outlast
ESCALATE_EVERY = 30.0  # seconds between SLA checks


@dataclass
class MaintenanceMetrics:
    """What the maintenance state counts."""

    registry: CollectorRegistry
    events_applied: Counter
    events_dropped: Counter
    events_retried: Counter
    events_refused: Counter


class MaintenanceService:
    """Tasks, alarms, approvals, people and reports over one state database; `run` applies alarm events."""

    def __init__(self, site: Site | Portfolio, settings: Settings, clock: Clock, engine: Engine, *,
                 backoff: Backoff | None = None) -> None:
        portfolio = as_portfolio(site)
        self.portfolio = portfolio
        self.site = portfolio.first
        self.engine = engine
        self.clock = clock
        sessions = session_factory(engine)
        self.tasks = TaskService(sessions, clock, SlaPolicy.from_settings(self.site.sla))
        self.alarms = AlarmService(sessions, clock, self.tasks)
        self.approvals = ApprovalService(sessions, clock, self.tasks)
        self.exceptions = ExceptionService(sessions, clock, self.tasks, portfolio)
        self.handovers = HandoverService(sessions, clock, portfolio)
        self.audit = AuditTrail(sessions)
        self.auth = AuthService(sessions, SystemClock())
        self.reports = MonthlyReport(sessions, self.tasks.sla, site=portfolio, clock=clock)
        registry = CollectorRegistry()
        self.metrics = MaintenanceMetrics(
            registry,
            Counter("pumpwatch_alarm_events_applied_total", "Alarm events turned into alarms and tasks",
                    registry=registry),
            Counter("pumpwatch_alarm_events_dropped_total", "Alarm events lost to a full intake queue",
                    registry=registry),
            Counter("pumpwatch_alarm_events_retried_total",
                    "Attempts to apply an alarm event that failed and were retried", registry=registry),
            Counter("pumpwatch_alarm_events_refused_total",
                    "Alarm events that cannot be applied (not a database outage)", registry=registry))
        self.notifier = Notifier(settings.notify, registry, self.site.site.timezone,
                                 portfolio.organisation.zh)
        self.set_portfolio(portfolio)
        self.backoff = backoff or Backoff(first=0.5, cap=30.0)
        self._events: asyncio.Queue[AlarmEvent] | None = None

    def set_portfolio(self, portfolio: Portfolio) -> None:
        """Take the estates as their site files now have them (at start, and after a reload)."""
        self.portfolio = portfolio
        if len(portfolio):
            self.site = portfolio.first
        self.tasks.estate_slas = {estate: SlaPolicy.from_settings(site.sla)
                                  for estate, site in portfolio.estates.items()}
        self.exceptions.set_portfolio(portfolio)
        self.handovers.set_portfolio(portfolio)
        self.reports.set_portfolio(portfolio)
        self.notifier.formatter.estate_names = {e: s.site.name.zh for e, s in portfolio.estates.items()}

    # --- alarm intake ------------------------------------------------------------------------------

    def accept_event(self, event: AlarmEvent) -> None:
        """An alarm-engine listener (call on the event loop's thread).

        An event without its estate (made before estates) is the only estate's; with several estates it
        cannot be placed and is refused (counted, logged).
        """
        if not event.key.estate:
            only = self.portfolio.only
            if only is None:
                self.metrics.events_refused.inc()
                log.error("alarm event without an estate in a deployment of several: %s", event)
                return
            event = event.in_estate(only)
        if self._events is None:
            self._events = asyncio.Queue(EVENT_QUEUE)
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            self.metrics.events_dropped.inc()
            log.error("alarm intake full (%d events): %s %s not applied", EVENT_QUEUE, event.key,
                      event.action.value)

    async def apply_events(self) -> None:
        """Apply queued alarm events in arrival order until cancelled."""
        if self._events is None:
            self._events = asyncio.Queue(EVENT_QUEUE)
        while True:
            event = await self._events.get()
            await self._apply_in_order(event)

    async def _apply_in_order(self, event: AlarmEvent) -> None:
        """Apply one event, retrying it in place until it holds: nothing behind it may overtake it."""
        while True:
            try:
                alarm, change = await asyncio.to_thread(self.alarms.apply_change, event)
            except TRANSIENT as err:  # the database is briefly away
                self.metrics.events_retried.inc()
                delay = self.backoff.next()
                log.warning("applying alarm event %s %s failed (%s); %d events wait, retry in %.1f s",
                            event.key, event.action.value, err, self.pending_events, delay)
                await asyncio.sleep(delay)
                continue
            except Exception:  # not the database: retrying would fail the same way
                self.metrics.events_refused.inc()
                log.exception("alarm event refused, it cannot be applied: %s", event)
                return
            self.backoff.reset()
            self.metrics.events_applied.inc()
            self.notifier.alarm_changed(change, alarm)
            return

    @property
    def pending_events(self) -> int:
        """Alarm events waiting to be applied."""
        return 0 if self._events is None else self._events.qsize()

    # --- SLA ---------------------------------------------------------------------------------------

    async def check_deadlines(self) -> None:
        """Escalate late tasks and unaccepted handovers, expire access requests and exceptions, once."""
        for escalation in await asyncio.to_thread(self.tasks.escalate):
            log.warning("task escalation: %s", escalation)
            self.notifier.escalated(escalation)
        expired = await asyncio.to_thread(self.approvals.expire)
        if expired:
            log.info("access requests expired: %s", expired)
        for ended in await asyncio.to_thread(self.exceptions.expire):
            log.info("exception %d expired; task opened: %s", ended.exception_id, ended.task_id)
            if ended.task_id is not None:  # the alarm it silenced is told now
                self.notifier.alarm_changed("raised", ended.alarm)
        for unaccepted in await asyncio.to_thread(self.handovers.escalate):
            log.warning("handover not accepted in time: %s", unaccepted)
            self.notifier.tell(self.notifier.formatter.handover(unaccepted))
        for step in await asyncio.to_thread(self.reports.close_due):  # idempotent across replicas
            log.info("monthly report: %s", step)
        await asyncio.to_thread(self.auth.forget_old_failures)

    async def _check_deadlines_forever(self) -> None:
        while True:
            await asyncio.sleep(ESCALATE_EVERY)
            try:
                await self.check_deadlines()
            except Exception:
                log.exception("SLA escalation check failed")

    # --- running -----------------------------------------------------------------------------------

    def database_health(self) -> tuple[bool, str]:
        """A health check: the state database answers."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True, self.engine.url.get_backend_name()

    async def run(self) -> None:
        """Apply alarm events, check SLAs and deliver notifications until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.apply_events(), name="maintenance-alarm-intake")
            tasks.create_task(self._check_deadlines_forever(), name="maintenance-sla")
            tasks.create_task(self.notifier.run(), name="maintenance-notify")

"""Everything the API's routes reach: the estates, stores, live buses, services and settings.

A route that takes a room or sensor id resolves it within an estate: the `estate` query parameter, or the
only estate of a single-estate deployment or of the caller's scope (`estate`, 422 when several estates and
none given). An estate outside the caller's scope is a 404, as if it did not exist: the scope is the
request's (`REQUEST_SCOPE`, set by `api.deps.scoped_user` for every signed-in request), so no route that
resolves an estate can forget it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from api.answer_cache import AnswerCache
from api.latest_cache import LatestCache
from maintenance.alarms import AlarmService
from maintenance.approvals import ApprovalService
from maintenance.audit import AuditTrail
from maintenance.auth import AuthService
from maintenance.errors import NotFound
from maintenance.estates import estate_of
from maintenance.exceptions import ExceptionService
from maintenance.handover import HandoverService
from maintenance.reports import MonthlyReport
from maintenance.scope import ORGANISATION, Scope
from maintenance.tasks import TaskService
from pumpwatch.alarm_events import AlarmEvent
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import Clock
from pumpwatch.portfolio import Portfolio, sensor_key
from pumpwatch.readings import Reading
from pumpwatch.series import SeriesStore
from pumpwatch.site import Site

HealthCheck = Callable[[], tuple[bool, str]]
REQUEST_SCOPE: ContextVar[Scope] = ContextVar("request_scope", default=ORGANISATION)


@dataclass
class ApiContext:
    """The API's view of the running system (one per app; tests build their own).

    `site` is the first estate's (the only one of a single-estate deployment); every estate is in
    `portfolio`, and `catalog` holds every estate's sensors by key.
    """

    site: Site
    catalog: SensorCatalog
    store: SeriesStore
    readings: LiveBus[Sequence[Reading]]
    alarm_events: LiveBus[AlarmEvent]
    auth: AuthService
    tasks: TaskService
    alarms: AlarmService
    clock: Clock
    attachments_dir: Path
    secure_cookies: bool = False
    registries: list[CollectorRegistry] = field(default_factory=list)
    health: dict[str, HealthCheck] = field(default_factory=dict)
    max_upload_bytes: int = 10 * 1024 * 1024
    reports: MonthlyReport | None = None
    approvals: ApprovalService | None = None
    exceptions: ExceptionService | None = None
    handovers: HandoverService | None = None
    audit: AuditTrail | None = None
    latest: LatestCache | None = None  # newest readings from the live bus; the store when None
    alarm_lists: AnswerCache = field(default_factory=AnswerCache)  # the alarm list's answers for a second
    task_lists: AnswerCache = field(default_factory=AnswerCache)  # the task list's
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)  # set when the server stops

    async def newest(self, sensors: Sequence[str]) -> dict[str, Reading]:
        """The newest reading of each sensor key: from the live cache when there is one, else the store."""
        if self.latest is not None:
            return await self.latest.latest(sensors)
        return await self.store.latest(sensors)

    @property
    def portfolio(self) -> Portfolio:
        """Every estate of the deployment."""
        return self.catalog.portfolio

    def estate(self, estate: str | None) -> str:
        """The estate a room or sensor id given to a route is in: `estate`, or the only one (else 422).

        Within the request's scope: an estate outside it is NotFound (404) whether or not it exists, as is
        an estate the deployment does not have; a person whose scope is one estate need not name it.
        """
        scope = REQUEST_SCOPE.get()
        if estate is not None and (not scope.covers(estate) or estate not in self.portfolio.estates):
            raise NotFound("estate", estate)
        if estate is None and scope.estates is not None:
            mine = scope.narrow(self.portfolio.estates)
            if len(mine) == 1:
                return mine[0]
        return estate_of(self.portfolio, estate)

    def estate_site(self, estate: str | None) -> Site:
        """The site of the estate a route means (see `estate`)."""
        return self.portfolio.estate(self.estate(estate))

    def sensor_key(self, estate: str | None, sensor: str) -> str:
        """The key of a sensor id given to a route (`<estate>/<sensor>`)."""
        return sensor_key(self.estate(estate), sensor)

    def take_portfolio(self, portfolio: Portfolio) -> None:
        """The estates as a reload left them: their sensors and rooms."""
        for estate in [e for e in self.portfolio.estates if e not in portfolio.estates]:
            self.catalog.remove_estate(estate)
        for estate, site in portfolio.estates.items():
            if self.catalog.portfolio.estates.get(estate) != site:
                self.catalog.replace_estate(site)
        if len(portfolio):
            self.site = portfolio.first

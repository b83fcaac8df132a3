"""Everything the API's routes reach: the site, stores, live buses, services and settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from api.latest_cache import LatestCache
from maintenance.alarms import AlarmService
from maintenance.approvals import ApprovalService
from maintenance.audit import AuditTrail
from maintenance.auth import AuthService
from maintenance.exceptions import ExceptionService
from maintenance.handover import HandoverService
from maintenance.reports import MonthlyReport
from maintenance.tasks import TaskService
from pumpwatch.alarm_events import AlarmEvent
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import Clock
from pumpwatch.readings import Reading
from pumpwatch.series import SeriesStore
from pumpwatch.site import Site

HealthCheck = Callable[[], tuple[bool, str]]


@dataclass
class ApiContext:
    """The API's view of the running system (one per app; tests build their own)."""

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
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)  # set when the server stops

    async def newest(self, sensors: Sequence[str]) -> dict[str, Reading]:
        """The newest reading of each sensor: from the live cache when there is one, else the store."""
        if self.latest is not None:
            return await self.latest.latest(sensors)
        return await self.store.latest(sensors)

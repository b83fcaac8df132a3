"""The API as a service: the HTTP server and web UI over a process's maintenance state and readings."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvicorn
from prometheus_client import CollectorRegistry

from api.app import create_app
from api.context import ApiContext
from api.latest_cache import LatestCache
from maintenance.service import MaintenanceService
from pumpwatch.alarm_events import AlarmEvent
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.readings import Reading
from pumpwatch.series import SeriesStore
from pumpwatch.settings import Settings


class _Server(uvicorn.Server):
    """Uvicorn without its own signal handlers: the command line owns Ctrl+C and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signals alone."""
        yield


class ApiService:
    """The HTTP app over the maintenance state, the store and the buses; `run` serves until cancelled."""

    def __init__(self, settings: Settings, state: MaintenanceService, store: SeriesStore,
                 readings: LiveBus[Sequence[Reading]], alarm_events: LiveBus[AlarmEvent],
                 registries: Sequence[CollectorRegistry] = ()) -> None:
        self.settings = settings
        cfg = settings.api
        self.state = state
        self.ctx = ApiContext(
            site=state.site, catalog=SensorCatalog(state.portfolio), store=store, readings=readings,
            alarm_events=alarm_events, auth=state.auth, tasks=state.tasks, alarms=state.alarms,
            clock=state.clock,
            attachments_dir=cfg.attachments_dir or Path(settings.collector.state_dir) / "attachments",
            secure_cookies=cfg.secure_cookies, registries=[*registries, state.metrics.registry],
            max_upload_bytes=cfg.max_upload_mb * 1024 * 1024, reports=state.reports,
            approvals=state.approvals, exceptions=state.exceptions, handovers=state.handovers,
            audit=state.audit, latest=LatestCache(store))
        self.ctx.health["database"] = state.database_health
        self.app = create_app(self.ctx)
        self.port = cfg.port
        self.server: uvicorn.Server | None = None

    async def run(self) -> None:
        """Serve HTTP (and keep the newest-readings cache) until cancelled."""
        cfg = self.settings.api
        config = uvicorn.Config(self.app, host=cfg.host, port=self.port, log_level="warning",
                                lifespan="off", access_log=False,
                                timeout_graceful_shutdown=3,  # live streams never end by themselves
                                # X-Forwarded-For only from configured proxies (uvicorn trusts 127.0.0.1
                                # by default, which let any local caller pick its own address)
                                proxy_headers=bool(cfg.trusted_proxies),
                                forwarded_allow_ips=",".join(cfg.trusted_proxies) or "",
                                # HTTPS served by the API itself, when it has a certificate
                                ssl_certfile=str(cfg.tls_cert) if cfg.tls_cert else None,
                                ssl_keyfile=str(cfg.tls_key) if cfg.tls_key else None)
        self.server = _Server(config)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._serve_http(self.server), name="api-http")
            if self.ctx.latest is not None:
                tasks.create_task(self.ctx.latest.run(self.ctx.readings), name="api-latest")

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
        scheme = "https" if self.settings.api.tls_cert else "http"
        return f"{scheme}://{self.settings.api.host}:{port}"

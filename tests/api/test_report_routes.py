"""The monthly report over HTTP, on SQLite and PostgreSQL: who reads it in which format, who signs it, and
the archived PDF downloaded byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.context import ApiContext
from collector.stores.embedded import EmbeddedStore
from maintenance.alarms import AlarmService
from maintenance.auth import AuthService
from maintenance.models import AuditLog, User
from maintenance.reports import MonthlyReport
from maintenance.tasks import TaskService
from maintenance.vocab import Role
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock
from pumpwatch.site import Text
from pumpwatch.sitefile import load_site
from tests.support.state import People

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
SHANGHAI = ZoneInfo("Asia/Shanghai")
READERS = {"supervisor", "director", "admin", "deputy_director"}
EVERYONE = ("operator", "technician", "supervisor", "director", "admin", "deputy_director")


@dataclass
class Api:
    client: httpx.AsyncClient
    headers: dict[str, dict[str, str]]
    clock: FakeClock
    sessions: sessionmaker[Session]
    auth: AuthService
    users: dict[str, User]

    def sign_in(self) -> None:
        """Fresh tokens for everyone (the fake clock moves past their expiry)."""
        self.headers = {role: {"Authorization": f"Bearer {self.auth.issue_token(user).token}"}
                        for role, user in self.users.items()}


async def at(api: Api, when: datetime) -> None:
    await api.clock.advance(when.timestamp() - api.clock.now())
    await asyncio.to_thread(api.sign_in)


@pytest.fixture
async def api(tmp_path: Path, sessions: sessionmaker[Session], clock: FakeClock, auth: AuthService,
              tasks: TaskService, alarms: AlarmService, people: People) -> AsyncIterator[Api]:
    site = load_site(EXAMPLE)
    store = EmbeddedStore(tmp_path / "series.db")
    await store.start()
    ctx = ApiContext(site=site, catalog=SensorCatalog(site), store=store, readings=LiveBus(),
                     alarm_events=LiveBus(), auth=auth, tasks=tasks, alarms=alarms, clock=clock,
                     attachments_dir=tmp_path / "files",
                     reports=MonthlyReport(sessions, site=site, clock=clock))
    # A technician standing in for the absent director for a year.
    deputy = auth.create_user("dave", "correct horse battery", ["technician"], display_name="Dave")
    auth.add_deputy(people.director.id, deputy.id, Role.DIRECTOR, auth.now() - timedelta(hours=1),
                    auth.now() + timedelta(days=365), people.admin)
    users = {"operator": people.operator, "technician": people.technician, "supervisor": people.supervisor,
             "director": people.director, "admin": people.admin, "deputy_director": deputy}
    tasks.create_task(people.operator, Text(zh="漏水", en="leak"), asset="dom-p1",
                      estate="harbour-view")  # January has a task
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        api = Api(client, {}, clock, sessions, auth, users)
        api.sign_in()
        yield api
    await store.close()


@pytest.mark.parametrize("fmt", ["json", "csv", "html", "pdf"])
async def test_supervisors_directors_and_admins_read_every_format(api: Api, fmt: str) -> None:
    for role in EVERYONE:
        resp = await api.client.get(f"/api/reports/monthly/2026-01?format={fmt}", headers=api.headers[role])
        if role in READERS:
            assert resp.status_code == 200, (role, resp.text)
        else:
            assert resp.status_code == 403, role
            assert resp.headers["content-type"].startswith("application/problem+json")
    assert (await api.client.get("/api/reports/monthly/2026-01")).status_code == 401
    resp = await api.client.get(f"/api/reports/monthly/2026-01?format={fmt}", headers=api.headers["admin"])
    kinds = {"json": "application/json", "csv": "text/csv", "html": "text/html", "pdf": "application/pdf"}
    assert resp.headers["content-type"].startswith(kinds[fmt])
    if fmt == "json":
        assert resp.json()["status"] == "preview"
        assert resp.json()["totals"]["raised"] == 1
    if fmt == "pdf":
        assert resp.content.startswith(b"%PDF")
        assert resp.headers["cache-control"] == "no-store"


async def test_only_the_director_deputy_and_supervisor_sign(api: Api) -> None:
    await at(api, datetime(2026, 2, 2, 9, tzinfo=SHANGHAI))
    url = "/api/reports/monthly/2026-01/sign"
    for role in ("operator", "technician", "admin"):
        resp = await api.client.post(url, headers=api.headers[role])
        assert resp.status_code == 403, role
    resp = await api.client.post(url, headers=api.headers["supervisor"])  # 编制
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "preview"
    assert resp.json()["signatures"]["prepared"] is not None
    resp = await api.client.post(url, headers=api.headers["supervisor"])
    assert resp.status_code == 409
    resp = await api.client.post(url, json={"line": "approved"}, headers=api.headers["supervisor"])
    assert resp.status_code == 403
    assert "director" in resp.json()["detail"]
    resp = await api.client.post(url, headers=api.headers["deputy_director"])  # 审核: closes the month
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "closed"
    assert body["closed_by"] == "signed"
    assert body["signatures"]["approved"]["name"] == "Dave（代 deputy）"
    assert (await api.client.post(url, headers=api.headers["director"])).status_code == 409


async def test_a_month_not_over_cannot_be_signed_and_bad_months_are_refused(api: Api) -> None:
    resp = await api.client.post("/api/reports/monthly/2026-01/sign", headers=api.headers["director"])
    assert resp.status_code == 409
    assert "not over" in resp.json()["detail"]
    for month in ("2026-13", "2026-1", "january"):
        resp = await api.client.get(f"/api/reports/monthly/{month}", headers=api.headers["director"])
        assert resp.status_code == 422, month
    resp = await api.client.get("/api/reports/monthly/2026-02", headers=api.headers["director"])
    assert resp.status_code == 422
    assert "not begun" in resp.json()["detail"]
    resp = await api.client.post("/api/reports/monthly/2026-01/sign", json={"line": "boss"},
                                 headers=api.headers["director"])
    assert resp.status_code == 422


async def test_the_closed_months_pdf_is_the_archived_one_byte_for_byte(api: Api) -> None:
    await at(api, datetime(2026, 2, 3, 9, tzinfo=SHANGHAI))
    resp = await api.client.post("/api/reports/monthly/2026-01/sign", headers=api.headers["director"])
    assert resp.status_code == 200
    [edition] = resp.json()["archive"]
    await at(api, datetime(2026, 2, 4, 9, tzinfo=SHANGHAI))
    first = await api.client.get("/api/reports/monthly/2026-01?format=pdf", headers=api.headers["admin"])
    second = await api.client.get("/api/reports/monthly/2026-01?format=pdf",
                                  headers=api.headers["supervisor"])
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    digest = hashlib.sha256(first.content).hexdigest()
    assert first.headers["x-content-sha256"] == digest == edition["sha256"]
    assert first.headers["etag"] == f'"{digest}"'
    with api.sessions() as session:
        audited = await asyncio.to_thread(lambda: [row.after for row in session.scalars(
            select(AuditLog).where(AuditLog.entity == "report", AuditLog.action == "archived"))])
    assert [a["sha256"] for a in audited if a] == [digest]
    text = PdfReader(io.BytesIO(first.content)).pages[0].extract_text()
    assert "定稿 Final" in text
    assert "月度维保报告 2026-01" in text
    missing = await api.client.get("/api/reports/monthly/2026-01?format=pdf&edition=2",
                                   headers=api.headers["admin"])
    assert missing.status_code == 404

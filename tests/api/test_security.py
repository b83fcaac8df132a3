"""Sessions, CSRF, login limits, token revocation, uploads and headers over HTTP (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.context import ApiContext
from api.deps import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from collector.stores.embedded import EmbeddedStore
from maintenance.alarms import AlarmService
from maintenance.auth import AuthService
from maintenance.reports import MonthlyReport
from maintenance.tasks import TaskService
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock
from pumpwatch.sitefile import load_site
from tests.support.state import PASSWORD, People

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
async def client(tmp_path: Path, sessions: sessionmaker[Session], clock: FakeClock, auth: AuthService,
                 tasks: TaskService, alarms: AlarmService,
                 people: People) -> AsyncIterator[httpx.AsyncClient]:
    site = load_site(EXAMPLE)
    store = EmbeddedStore(tmp_path / "series.db")
    ctx = ApiContext(site=site, catalog=SensorCatalog(site), store=store, readings=LiveBus(),
                     alarm_events=LiveBus(), auth=auth, tasks=tasks, alarms=alarms, clock=clock,
                     attachments_dir=tmp_path / "files", secure_cookies=True, reports=MonthlyReport(sessions),
                     max_upload_bytes=1024)
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="https://api") as http:
        yield http


async def test_a_session_cookie_is_httponly_strict_secure_and_writes_need_the_csrf_token(
        client: httpx.AsyncClient, people: People) -> None:
    resp = await client.post("/api/auth/login", json={"username": people.operator.username,
                                                      "password": PASSWORD})
    assert resp.status_code == 200
    cookies = resp.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith(SESSION_COOKIE + "="))
    for flag in ("HttpOnly", "Secure", "SameSite=strict"):
        assert flag.lower() in session.lower()
    csrf = resp.json()["csrf_token"]
    assert (await client.get("/api/auth/me")).status_code == 200  # reads need no CSRF token
    body = {"title": {"zh": "漏水", "en": "leak"}}
    refused = await client.post("/api/tasks", json=body)
    assert refused.status_code == 403
    assert CSRF_HEADER in refused.json()["detail"]
    assert (await client.post("/api/tasks", json=body, headers={CSRF_HEADER: "forged"})).status_code == 403
    assert (await client.post("/api/tasks", json=body, headers={CSRF_HEADER: csrf})).status_code == 201
    assert client.cookies.get(CSRF_COOKIE) == csrf  # readable by the page's script, unlike the session


async def test_logout_ends_the_session_and_a_revoked_token_is_refused(client: httpx.AsyncClient,
                                                                     people: People) -> None:
    form = {"username": people.technician.username, "password": PASSWORD}
    token = (await client.post("/api/auth/token", data=form)).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
    assert (await client.post("/api/auth/logout", headers=headers)).status_code == 204
    resp = await client.get("/api/auth/me", headers=headers)
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/problem+json")


async def test_wrong_passwords_slow_down_the_name_from_that_address_alike_for_unknown_names(
        client: httpx.AsyncClient, people: People, clock: FakeClock) -> None:
    answers = {}
    for name in (people.director.username, "nobody-here"):
        await clock.advance(61)  # out of the per-address limit's window
        wrong = {"username": name, "password": "wrong"}
        answers[name] = [(r.status_code, r.json()["detail"]) for r in
                         [await client.post("/api/auth/token", data=wrong) for _ in range(7)]]
    assert answers[people.director.username] == answers["nobody-here"]  # nothing tells them apart
    assert [status for status, _ in answers["nobody-here"]] == [401] * 6 + [429]
    await clock.advance(2)  # the name's own delay (1 s, then 2 s) still runs from this address
    wrong = {"username": people.director.username, "password": "wrong"}
    assert (await client.post("/api/auth/token", data=wrong)).status_code == 401
    waiting = await client.post("/api/auth/token", data={"username": people.director.username,
                                                          "password": PASSWORD})
    assert waiting.status_code == 429  # even the right password waits out the delay from here
    assert int(waiting.headers["Retry-After"]) >= 1
    assert waiting.headers["content-type"].startswith("application/problem+json")


async def test_many_attempts_from_one_address_are_rate_limited(client: httpx.AsyncClient) -> None:
    for i in range(11):
        last = await client.post("/api/auth/token", data={"username": f"someone-{i}", "password": "x"})
    assert last.status_code == 429
    assert int(last.headers["Retry-After"]) > 0


async def test_uploads_are_checked_by_content_and_size_and_served_as_downloads(
        client: httpx.AsyncClient, people: People) -> None:
    form = {"username": people.operator.username, "password": PASSWORD}
    token = (await client.post("/api/auth/token", data=form)).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    title = {"title": {"zh": "照片", "en": "photo"}}
    task = (await client.post("/api/tasks", json=title, headers=headers)).json()
    url = f"/api/tasks/{task['id']}/attachments"
    fake = await client.post(url, files={"file": ("x.png", b"<script>alert(1)</script>", "image/png")},
                             headers=headers)
    assert fake.status_code == 422  # claims PNG, is not
    big = await client.post(url, files={"file": ("big.png", PNG + b"\x00" * 2048, "image/png")},
                            headers=headers)
    assert big.status_code == 422
    ok = await client.post(url, files={"file": ("../../etc/passwd.png", PNG, "text/html")}, headers=headers)
    assert ok.status_code == 201
    stored = ok.json()
    assert stored["content_type"] == "image/png"  # from the bytes, not from the client
    assert "/" not in stored["filename"]
    download = await client.get(f"{url}/{stored['id']}", headers=headers)
    assert download.status_code == 200
    assert download.content == PNG
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-disposition"].startswith("attachment")


async def test_oversized_bodies_are_refused_before_reading(client: httpx.AsyncClient) -> None:
    huge = {"content-length": str(50 * 1024 * 1024)}
    resp = await client.post("/api/auth/login", content=b"x", headers=huge)
    assert resp.status_code == 413
    assert resp.headers["content-type"].startswith("application/problem+json")


async def test_every_answer_carries_the_security_headers(client: httpx.AsyncClient, people: People) -> None:
    form = {"username": people.operator.username, "password": PASSWORD}
    token = (await client.post("/api/auth/token", data=form)).json()["access_token"]
    answers = [await client.get("/api/tasks", headers={"Authorization": f"Bearer {token}"}),
               await client.get("/api/tasks"),  # 401
               await client.post("/api/auth/login", content=b"x", headers={"content-length": "99999999999"}),
               await client.get("/healthz")]
    assert [a.status_code for a in answers] == [200, 401, 413, answers[3].status_code]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "same-origin"

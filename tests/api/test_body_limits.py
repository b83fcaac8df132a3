"""Request bodies are bounded while they are read, declared or chunked, before any authentication work."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]
import pytest

from api.app import MAX_BODY, MAX_JSON_BODY, create_app
from api.context import ApiContext
from collector.stores.embedded import EmbeddedStore
from maintenance.alarms import AlarmService
from maintenance.auth import AuthService
from maintenance.tasks import TaskService
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock
from pumpwatch.sitefile import load_site
from tests.support.processes import PumpwatchProcess

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
CHUNK = 64 * 1024


@pytest.fixture
def app_client(tmp_path: Path, clock: FakeClock, auth: AuthService, tasks: TaskService,
               alarms: AlarmService) -> httpx.AsyncClient:
    site = load_site(EXAMPLE)
    ctx = ApiContext(site=site, catalog=SensorCatalog(site), store=EmbeddedStore(tmp_path / "series.db"),
                     readings=LiveBus(), alarm_events=LiveBus(), auth=auth, tasks=tasks, alarms=alarms,
                     clock=clock, attachments_dir=tmp_path / "files")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://api")


class Endless:
    """A chunked body that never ends by itself; counts what the server pulled."""

    def __init__(self, head: bytes = b"") -> None:
        self.sent = 0
        self.head = head

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.head
        while True:
            self.sent += CHUNK
            yield b"x" * CHUNK


async def test_a_chunked_json_body_stops_being_read_at_its_limit_and_gets_a_413_before_the_401(
        app_client: httpx.AsyncClient) -> None:
    body = Endless()
    async with app_client as http:
        resp = await http.post("/api/tasks", content=body.__aiter__(),
                               headers={"content-type": "application/json"})
    assert resp.status_code == 413  # not 401: the body limit comes before the sign-in check
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert str(MAX_JSON_BODY) in resp.json()["detail"]
    assert body.sent <= MAX_JSON_BODY + 2 * CHUNK


async def test_a_chunked_upload_stops_at_the_upload_limit(app_client: httpx.AsyncClient) -> None:
    body = Endless(b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
                   b"Content-Type: image/png\r\n\r\n")
    async with app_client as http:
        resp = await http.post("/api/tasks/1/attachments", content=body.__aiter__(),
                               headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert resp.status_code == 413
    assert str(MAX_BODY) in resp.json()["detail"]
    assert MAX_JSON_BODY < body.sent <= MAX_BODY + 2 * CHUNK


async def test_a_declared_length_over_the_limit_is_refused_unread(app_client: httpx.AsyncClient) -> None:
    async with app_client as http:
        resp = await http.post("/api/tasks", content=b"{}", headers={
            "content-type": "application/json", "content-length": str(MAX_JSON_BODY + 1)})
    assert resp.status_code == 413


async def test_a_small_body_still_reaches_the_route(app_client: httpx.AsyncClient) -> None:
    async with app_client as http:
        resp = await http.post("/api/tasks", json={"title": {"zh": "漏水", "en": "leak"}})
    assert resp.status_code == 401  # read in full, then refused for want of a sign-in


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[PumpwatchProcess]:
    env = dict(os.environ, PUMPWATCH_COLLECTOR__STATE_DIR=str(tmp_path / "state"))
    api = PumpwatchProcess("api", ["serve", "--site", str(EXAMPLE), "--port", "0", "--mqtt-port", "0"], env,
                           tmp_path / "api.log")
    api.start()
    try:
        yield api
    finally:
        api.stop()


def _send_chunked(host: str, port: int, total: int) -> bytes:
    """POST `total` bytes chunked to /api/tasks with no sign-in; the server's answer (it may cut us off)."""
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(b"POST /api/tasks HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % CHUNK + b"x" * CHUNK + b"\r\n"
        sent = 0
        try:
            while sent < total:
                sock.sendall(chunk)
                sent += CHUNK
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading and closed: what we want
        sock.settimeout(10)
        try:
            return sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            return b""


@pytest.mark.e2e  # a real `pumpwatch serve` process and 200 MB on loopback
async def test_200_mb_chunked_without_a_sign_in_leaves_the_api_memory_where_it_was(
        serving: PumpwatchProcess) -> None:
    url = httpx.URL(await asyncio.to_thread(serving.wait_url))
    assert serving.proc is not None
    process = psutil.Process(serving.proc.pid)
    async with httpx.AsyncClient(base_url=str(url)) as http:
        for _ in range(3):  # warm up the routes the request goes through
            await http.post("/api/tasks", json={"title": {"zh": "漏水", "en": "leak"}})
    before = process.memory_info().rss
    started = time.monotonic()
    answer = await asyncio.to_thread(_send_chunked, url.host, url.port or 80, 200 * 1024 * 1024)
    after = process.memory_info().rss
    assert answer.startswith(b"HTTP/1.1 413") or answer == b"", answer[:200]
    assert after - before < 20 * 1024 * 1024, f"RSS grew {(after - before) / 1e6:.1f} MB"
    assert time.monotonic() - started < 120

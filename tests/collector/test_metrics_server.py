"""/metrics and /healthz of a collector without the API (`pumpwatch collect`, `pumpwatch edge`)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from collector.metrics import CollectorMetrics
from collector.metrics_server import MetricsServer
from pumpwatch.settings import Settings
from pumpwatch.sitefile import parse_site
from pumpwatch.stack import StackOptions, run_stack
from tests.support.services import Mosquitto


async def test_it_serves_the_registry_and_the_health_report_and_nothing_else() -> None:
    metrics = CollectorMetrics()
    metrics.written.inc(42)
    server = MetricsServer(metrics.registry, lambda: {"status": "ok", "buffer_depth": 3}, port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            text = (await client.get("/metrics")).text
            assert "pumpwatch_readings_written_total 42.0" in text
            health = await client.get("/healthz")
            assert health.status_code == 200
            assert health.json() == {"status": "ok", "buffer_depth": 3}
            assert (await client.get("/")).status_code == 404
            assert (await client.post("/metrics")).status_code == 405
        # A client that never finishes its request is let go; the server keeps serving.
        _reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET /metrics HTTP/1.1\r\n")
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/healthz")).status_code == 200
        writer.close()
    finally:
        await server.stop()


SITE = """
site: {id: m, name: {zh: 指标, en: Metrics}}
rooms:
  - id: r1
    name: {zh: 一号泵房, en: Room 1}
    sensors: [{id: t1, kind: temperature, source: mqtt, alarms: {no_data: false}}]
edges:
  - {id: e1, rooms: [r1], username: edge-e1}
mqtt:
  - topic: "m/{sensor}"
    format: number
    values: [{sensor: "{sensor}"}]
"""


async def _banner_url(capsys: pytest.CaptureFixture[str], task: asyncio.Task[int]) -> str:
    seen = ""
    async with asyncio.timeout(30):
        while "Metrics: " not in seen:
            assert not task.done(), seen
            seen += capsys.readouterr().out
            await asyncio.sleep(0.05)
    found = re.search(r"Metrics: (http://\S+)/metrics", seen)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize("role", ["collect", "edge"])
async def test_collect_and_edge_alone_serve_metrics_and_health(
        role: str, mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings()
    settings.mqtt.url = mosquitto.url
    settings.collector.state_dir = tmp_path
    settings.collector.client_id = f"metrics-{role}-{tmp_path.name}"
    settings.metrics.port = 0
    if role == "edge":
        settings.mqtt.url = None  # no broker in the room
        settings.edge.id = "e1"
        settings.edge.uplink_url = SecretStr(mosquitto.url)
    site = parse_site(SITE, "metrics.yaml")
    task = asyncio.create_task(run_stack(site, settings, StackOptions(collect=True, edge=role == "edge")))
    try:
        url = await _banner_url(capsys, task)
        async with httpx.AsyncClient(base_url=url) as client:
            assert "pumpwatch_buffer_depth" in (await client.get("/metrics")).text
            health = (await client.get("/healthz")).json()
        assert health["buffer_capacity"] == settings.collector.buffer_capacity
        assert ("uplink" in health) == (role == "edge")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

"""The production topology without Docker: every role its own OS process on shared servers.

Two collectors share the MQTT load (shared subscription) and two API processes share PostgreSQL,
against real Mosquitto and InfluxDB. Mid-run one collector and one API process are killed with
SIGKILL (the collector comes back, as a supervisor would restart it). Every published reading is
stored exactly once, and a leak raised after the kills still becomes one alarm and one task.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.publish as publish
import psycopg
import pytest

from maintenance.auth import AuthService
from maintenance.db import make_engine, session_factory, upgrade
from pumpwatch.clock import SystemClock
from tests.support.influx import stored_counts
from tests.support.mqtt import CountingPublisher, create_session
from tests.support.processes import PumpwatchProcess
from tests.support.services import InfluxDB, Mosquitto, Postgres
from tests.support.waiting import eventually

# Every role its own `pumpwatch` process, a collector and an API SIGKILLed mid-run.
pytestmark = pytest.mark.e2e

SITE = """
site: {id: dist, name: {zh: 分布式, en: Distributed}}
rooms:
  - id: r1
    name: {zh: 一号泵房, en: Room 1}
    sensors:
      - {id: seq, kind: flow, range: [0, 100000000], source: mqtt, alarms: {no_data: false}}
      - {id: leak1, kind: leak, source: mqtt, alarms: {no_data: false}}
mqtt:
  - topic: "%(p)s/n/{sensor}"
    format: number
    values: [{sensor: "{sensor}"}]
  - topic: "%(p)s/b/{sensor}"
    format: boolean
    values: [{sensor: "{sensor}"}]
"""


@pytest.fixture
def state_db(postgres: Postgres) -> Iterator[str]:
    name = f"dist_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    url = postgres.dsn.rsplit("/", 1)[0] + "/" + name
    engine = make_engine(url)
    upgrade(engine)
    AuthService(session_factory(engine), SystemClock()).create_user("op", "operator-password-1", ["operator"])
    engine.dispose()
    yield url
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.mark.timeout(300)
async def test_killing_a_collector_and_an_api_loses_and_duplicates_nothing(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, state_db: str, unique_topic: str) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SITE % {"p": unique_topic}, encoding="utf-8")
    database = f"dist_{uuid.uuid4().hex[:8]}"
    base = dict(os.environ, PUMPWATCH_INFLUX__URL=influxdb.url, PUMPWATCH_INFLUX__DATABASE=database,
                PUMPWATCH_API__DATABASE_URL=state_db)
    roles: list[PumpwatchProcess] = []
    collectors = []
    where = ["--site", str(site), "--mqtt", mosquitto.url]
    for name in ("collector-a", "collector-b"):
        client_id = f"{name}-{uuid.uuid4().hex[:6]}"
        # The shared-subscription sessions exist before the first message, as in production.
        await asyncio.to_thread(create_session, mosquitto.port, client_id, f"$share/dist/{unique_topic}/n/+")
        env = dict(base, PUMPWATCH_COLLECTOR__STATE_DIR=str(tmp_path / name),
                   PUMPWATCH_COLLECTOR__CLIENT_ID=client_id, PUMPWATCH_COLLECTOR__SHARE_GROUP="dist")
        collectors.append(PumpwatchProcess(name, ["collect", *where], env, tmp_path / f"{name}.log"))
    apis = [PumpwatchProcess(name, ["serve", *where, "--port", "0"],
                             dict(base, PUMPWATCH_COLLECTOR__STATE_DIR=str(tmp_path / name),
                                  PUMPWATCH_COLLECTOR__CLIENT_ID=f"{name}-{uuid.uuid4().hex[:6]}"),
                             tmp_path / f"{name}.log")
            for name in ("api-a", "api-b")]
    roles = [*collectors, *apis]
    publisher = CountingPublisher(mosquitto.port, f"{unique_topic}/n/seq", rate=300)
    try:
        for role in roles:
            role.start()
        url_b = apis[1].wait_url()
        apis[0].wait_url()
        publisher.start()
        await asyncio.sleep(3)
        collectors[0].kill()
        apis[0].kill()
        await asyncio.sleep(3)
        collectors[0].start()  # restarted, as a supervisor would
        await asyncio.sleep(3)
        publisher.stop()
        published = publisher.sent

        async def all_acked() -> bool:
            return publisher.acked >= publisher.sent

        await eventually(all_acked, 20)

        async def stored() -> tuple[int, int] | None:
            counts = await stored_counts(influxdb.url, database, "seq")
            return counts if counts[1] >= published else None

        counts = await eventually(stored, 60)
        assert counts == (published, published)  # every reading once: 0 lost, 0 duplicated

        # Alarms and tasks still flow through the surviving API.
        publish.single(f"{unique_topic}/b/leak1", "true", qos=1, hostname="127.0.0.1", port=mosquitto.port)
        async with httpx.AsyncClient(base_url=url_b, timeout=10) as client:
            token = (await client.post("/api/auth/token", data={"username": "op",
                                                                "password": "operator-password-1"})).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}

            async def leak_task() -> list[dict[str, Any]]:
                resp = await client.get("/api/tasks", params={"asset": "r1"}, headers=headers)
                return list(resp.json()["data"])

            tasks = await eventually(leak_task, 30)
            alarms = (await client.get("/api/alarms", params={"asset": "r1"}, headers=headers)).json()
        assert len(tasks) == 1
        assert alarms["count"] == 1
        assert alarms["data"][0]["alarm_type"] == "leak"
    finally:
        publisher.close()
        for role in roles:
            role.stop()
    for role in roles:
        assert "Traceback" not in role.log.read_text(errors="replace"), role.name

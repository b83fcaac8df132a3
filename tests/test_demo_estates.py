"""`pumpwatch demo --estates 3`: a small portfolio with its demo people, each estate's own held for it alone.

The demo logins on both databases; the whole demo as its own process (e2e) over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.production import demo_login_problems
from maintenance.accounts import DEMO_USERS, demo_password, ensure_demo_users, estate_demo_username
from maintenance.auth import AuthService
from pumpwatch.cli import DEMO_FLEET_SEED
from pumpwatch.portfolio import load_portfolio
from simulators.fleet import fleet_sites
from tests.support.processes import PumpwatchProcess
from tests.support.state import People

A, B, C = "harbour-view", "green-lake", "pearl-court"


def test_several_estates_get_their_own_technician_and_supervisor_held_for_that_estate_only(
        auth: AuthService) -> None:
    logins = ensure_demo_users(auth, [A, B, C])
    names = [user for user, _password, _roles in logins]
    assert names[:len(DEMO_USERS)] == [user for user, _n, _r in DEMO_USERS]
    assert set(names[len(DEMO_USERS):]) == {f"{role}-{estate}" for estate in (A, B, C)
                                            for role in ("technician", "supervisor")}
    for user, _name, _roles in DEMO_USERS:  # the organisation-wide people stay organisation-wide
        found = auth.get_by_username(user)
        assert found is not None
        assert auth.scope(found).whole
    for estate in (A, B, C):
        for role in ("technician", "supervisor"):
            found = auth.get_by_username(estate_demo_username(role, estate))
            assert found is not None
            assert found.roles == [role]
            assert found.estates == [estate]
            assert auth.scope(found).estates == frozenset({estate})
            assert auth.verify_password(found.password_hash, demo_password(found.username))
    assert ensure_demo_users(auth, [A, B, C]) == logins  # a second start makes nobody twice


def test_a_production_start_refuses_an_estates_demo_person_with_the_published_password(
        auth: AuthService, people: People) -> None:
    ensure_demo_users(auth, [A, B])
    mine = estate_demo_username("technician", A)
    assert f"user {mine!r} still has its published demo password" in demo_login_problems(auth)
    for user in auth.list_users():  # every demo person changes their password: nothing is refused
        if auth.verify_password(user.password_hash, demo_password(user.username)):
            auth.set_password(user.id, "a much longer private passphrase", people.admin)
    assert demo_login_problems(auth) == []


def test_one_estate_has_only_the_organisation_wide_demo_people(auth: AuthService) -> None:
    logins = ensure_demo_users(auth, [A])
    assert [user for user, _p, _r in logins] == [user for user, _n, _r in DEMO_USERS]
    assert auth.get_by_username(estate_demo_username("technician", A)) is None


@contextlib.contextmanager
def _demo(tmp_path: Path) -> Iterator[tuple[str, PumpwatchProcess]]:
    env = dict(os.environ, PUMPWATCH_COLLECTOR__STATE_DIR=str(tmp_path / "state"),
               PUMPWATCH_COLLECTOR__CLIENT_ID=f"demo-{uuid.uuid4().hex[:8]}")
    env.pop("PUMPWATCH_INFLUX__URL", None)  # the embedded defaults: in-process broker, embedded store
    env.pop("PUMPWATCH_MQTT__URL", None)
    args = ["demo", "--estates", "3", "--port", "0", "--mqtt-port", "0", "--modbus-port-base", "0",
            "--status-every", "5"]
    demo = PumpwatchProcess("demo", args, env, tmp_path / "demo.log")
    demo.start()
    try:
        url = demo.wait_url(120)
        deadline = time.monotonic() + 60
        while "Demo logins" not in demo.text():
            assert time.monotonic() < deadline, f"no demo logins:\n{demo.text()[-3000:]}"
            time.sleep(0.2)
        yield url, demo
    finally:
        demo.stop()


async def _login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    resp = await client.post("/api/auth/token",
                             data={"username": username, "password": demo_password(username)})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


@pytest.mark.e2e  # the whole demo as its own process: three estates' simulators, every role
async def test_demo_with_three_estates_serves_each_estate_to_its_own_people(tmp_path: Path) -> None:
    estates = [doc["site"]["id"] for doc in fleet_sites(3, DEMO_FLEET_SEED, rooms=(2, 2), feed="modbus")]
    with _demo(tmp_path) as (url, demo):
        deployment = load_portfolio(tmp_path / "state" / "demo-estates" / "deployment.yaml")
        assert list(deployment.estates) == estates
        for estate in estates:
            assert f"technician-{estate}" in demo.text()
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            director = await _login(client, "director")
            listed = (await client.get("/api/estates", headers=director)).json()["data"]
            assert [e["id"] for e in listed] == estates
            mine, other = estates[0], estates[1]
            technician = await _login(client, f"technician-{mine}")
            own = await client.get(f"/api/estates/{mine}/rooms/dom/latest", headers=technician)
            assert own.status_code == 200, own.text
            assert [e["id"] for e in (await client.get("/api/estates", headers=technician)).json()["data"]] \
                == [mine]
            theirs = await client.get(f"/api/estates/{other}/rooms/dom/latest", headers=technician)
            assert theirs.status_code == 404
            room = f"/api/rooms/fire?estate={other}"
            assert (await client.get(room, headers=technician)).status_code == 404
            assert (await client.get(room, headers=director)).status_code == 200
            # Each estate's simulated PLCs reach the collector: readings of every estate arrive.
            for estate in estates:
                deadline = time.monotonic() + 60
                while True:
                    latest = (await client.get(f"/api/estates/{estate}/rooms/dom/latest",
                                               headers=director)).json()["data"]
                    if latest:
                        break
                    assert time.monotonic() < deadline, f"no readings of {estate}:\n{demo.text()[-3000:]}"
                    await asyncio.sleep(0.5)

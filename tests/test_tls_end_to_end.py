"""TLS all the way: a signed alarm event from a collector, through Mosquitto over TLS with the generated
ACL, to an API that serves its task over HTTPS (uvicorn's own TLS, `PUMPWATCH_API__TLS_CERT`/`TLS_KEY`).

Certificates are made here: a site CA, the broker's and the API's certificates for 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from collector.publishers.alarms import AlarmPublisher
from maintenance.auth import AuthService
from maintenance.db import make_engine, session_factory
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.broker_acl import Roles, centre_identities, render_acl, render_password_file
from pumpwatch.clock import SystemClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.settings import Settings
from pumpwatch.signing import Sequences, Signer
from pumpwatch.site import Severity, Site, Text
from pumpwatch.sitefile import load_site
from pumpwatch.stack import StackOptions, run_stack
from tests.support.services import HOST, Mosquitto, free_ports
from tests.support.waiting import eventually

HV = "harbour-view"  # the estate of examples/site.yaml

ROOT = Path(__file__).resolve().parents[1]
KEY = "collector-a-" + "t" * 40


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site CA, and certificates for 127.0.0.1 it signed: the broker's and the API's."""
    d = tmp_path_factory.mktemp("site-tls")
    d.chmod(0o755)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Site CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    (d / "san.cnf").write_text(f"subjectAltName=IP:{HOST}\n")
    for name in ("broker", "api"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={HOST}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", "san.cnf", "-out", f"{name}.pem", cwd=d)
    for path in d.iterdir():
        path.chmod(0o644)
    return d


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(ROOT / "examples" / "site.yaml")


@pytest.fixture(scope="module")
def tls_acl_broker(site: Site, certificates: Path, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[Mosquitto]:
    work = tmp_path_factory.mktemp("tls-acl")
    identities = centre_identities([site], Roles(collectors=("collector-a",), apis=("api-1",)))
    passwords = {"collector-a": "collector-a-pw", "api-1": "api-1-pw"}
    passwd, _missing = render_password_file(identities, passwords)
    (work / "passwd").write_text(passwd)
    (work / "acl").write_text(render_acl(identities, "test"))
    with Mosquitto(tls=(certificates / "broker.pem", certificates / "broker.key"),
                   password_file=work / "passwd", acl_file=work / "acl") as broker:
        yield broker


async def test_a_signed_alarm_event_becomes_a_task_seen_over_https(
        site: Site, tls_acl_broker: Mosquitto, certificates: Path, db_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "trusted"
    keys.mkdir()
    (keys / "collector-a.key").write_text(KEY)
    (port,) = free_ports(1)
    settings = Settings()
    settings.mqtt.url = tls_acl_broker.url_for("api-1", "api-1-pw")
    settings.mqtt.ca_file = certificates / "ca.pem"
    settings.api.port = port
    settings.api.tls_cert = certificates / "api.pem"
    settings.api.tls_key = certificates / "api.key"
    settings.api.secure_cookies = True
    settings.api.database_url = db_url
    settings.signing.trusted_dir = keys
    settings.collector.state_dir = tmp_path / "state"
    engine = make_engine(db_url)
    auth = AuthService(session_factory(engine), SystemClock())
    auth.create_user("sup", "a long passphrase", ["supervisor"])
    engine.dispose()

    api = asyncio.create_task(run_stack(site, settings, StackOptions(collect=False, serve=True)))
    collector = AlarmPublisher(BrokerAddress.parse(tls_acl_broker.url_for("collector-a", "collector-a-pw"),
                                                   certificates / "ca.pem"),
                               "collector-a-alarms", Signer("collector-a", KEY.encode(), Sequences(None)))
    trust = ssl.create_default_context(cafile=str(certificates / "ca.pem"))
    try:
        async with httpx.AsyncClient(base_url=f"https://{HOST}:{port}", verify=trust) as http:
            async def healthy() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False
            await eventually(healthy, 30, interval=0.1)
            with pytest.raises(httpx.HTTPError):  # TLS only: plain HTTP gets no answer
                async with httpx.AsyncClient() as plain:
                    await plain.get(f"http://{HOST}:{port}/healthz", timeout=3)
            await asyncio.sleep(0.5)  # the API's feed subscribes once connected

            collector.start()
            collector.publish(AlarmEvent(AlarmAction.RAISED, AlarmKey("fire-p1", "leak", HV),
                                         Severity.CRITICAL,
                                         1_800_000_000.0, "fire", Text(zh="漏水", en="leak")))
            token = (await http.post("/api/auth/token",
                                     data={"username": "sup", "password": "a long passphrase"})).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}

            async def task_for_fire_p1() -> list[dict[str, object]]:
                tasks = (await http.get("/api/tasks", headers=headers)).json()["data"]
                return [t for t in tasks if t.get("asset") == "fire-p1"]
            (task,) = await eventually(task_for_fire_p1, 30, interval=0.2)
            assert task["priority"] == "critical"
    finally:
        collector.stop()
        api.cancel()
        await asyncio.gather(api, return_exceptions=True)

"""A production start refuses every insecure setting of every role before it opens anything.

Each case runs `pumpwatch <role>` (the command line's `main`, in this process) with a fit production
configuration but for one setting, and checks that it exits 1 naming the problem, and that nothing
was opened meanwhile: no socket bound or connected (no port, no in-process broker, no database
connection), no SQLite file, not even the state directory. Python's audit hooks see every
`socket.bind`, `socket.connect` and `sqlite3.connect` the command would make.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from maintenance.accounts import demo_password
from maintenance.auth import AuthService
from maintenance.db import make_engine, session_factory, upgrade
from pumpwatch.cli import main
from pumpwatch.clock import SystemClock
from pumpwatch.production import role_problems
from pumpwatch.settings import Settings
from pumpwatch.sitefile import load_site
from tests.support.services import Postgres

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "examples" / "site.yaml"
EDGE_SITE = ROOT / "examples" / "edge-site.yaml"
WATCHED = ("socket.bind", "socket.connect", "sqlite3.connect")
_seen: list[tuple[str, tuple[Any, ...]]] = []
_watching: dict[str, Any] = {"on": False, "threads": set()}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _watching["on"] and event in WATCHED and threading.get_ident() not in _watching["threads"]:
        _seen.append((event, args))


sys.addaudithook(_audit)  # cannot be removed: it does nothing outside `_watching`


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    """A CA file, this process's key and a directory of trusted keys (a collector's and the edge's)."""
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "own.key").write_text("o" * 64)
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    for kid in ("collector-a", "room1-gw"):
        (trusted / f"{kid}.key").write_text(kid[0] * 64)
    return tmp_path


FIT = {
    "PUMPWATCH_ENVIRONMENT": "production",
    "PUMPWATCH_MQTT__URL": "mqtts://collector-a:pw@127.0.0.1:8883",
    "PUMPWATCH_INFLUX__URL": "https://127.0.0.1:8086",
    "PUMPWATCH_INFLUX__USERNAME": "pumpwatch",
    "PUMPWATCH_INFLUX__PASSWORD": "influx-pw",
    "PUMPWATCH_API__DATABASE_URL": "postgresql://pumpwatch:pg-pw@127.0.0.1:5432/pumpwatch",
    "PUMPWATCH_API__SECURE_COOKIES": "true",
    "PUMPWATCH_SIGNING__KEY_ID": "collector-a",
}
EDGE_UPLINK = "mqtts://edge-room1-gw:pw@127.0.0.1:8883"


@pytest.fixture
def fit_env(secrets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A production environment fit for every role; yields the state directory (not yet created)."""
    for key in [k for k in os.environ if k.startswith("PUMPWATCH_")]:
        monkeypatch.delenv(key)
    state = tmp_path / "state"
    env = {**FIT, "PUMPWATCH_MQTT__CA_FILE": str(secrets / "ca.pem"),
           "PUMPWATCH_SIGNING__KEY_FILE": str(secrets / "own.key"),
           "PUMPWATCH_SIGNING__TRUSTED_DIR": str(secrets / "trusted"),
           "PUMPWATCH_COLLECTOR__STATE_DIR": str(state)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return state


def _argv(role: str) -> list[str]:
    if role == "edge":
        return ["edge", "--site", str(EDGE_SITE), "--edge-id", "room1-gw", "--uplink", EDGE_UPLINK]
    return [role, "--site", str(SITE)] + (["--port", "0"] if role in ("serve", "up", "demo") else [])


def _run_refused(role: str, capsys: pytest.CaptureFixture[str], state: Path) -> str:
    """Run the role; it must exit 1 having opened nothing. Its error output."""
    _seen.clear()
    _watching["threads"] = {t.ident for t in threading.enumerate() if t is not threading.current_thread()}
    _watching["on"] = True
    try:
        code = main(_argv(role))
    finally:
        _watching["on"] = False
    err = capsys.readouterr().err
    assert code == 1, err
    assert _seen == [], f"{role} opened {_seen} before refusing"
    assert not state.exists(), f"{role} created its state directory before refusing"
    return err


@pytest.mark.parametrize("role", ["collect", "serve", "schedule", "up", "edge", "simulate"])
def test_a_fit_configuration_passes(role: str, fit_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = load_site(EDGE_SITE if role == "edge" else SITE)
    settings = Settings()
    if role == "edge":
        settings.edge.id = "room1-gw"
        settings.edge.uplink_url = SecretStr(EDGE_UPLINK)
        settings.signing.key_id = None
        settings.mqtt.url = None  # no room broker: fine
    assert role_problems(settings, role, site) == []


def test_the_demo_is_refused_first_thing(fit_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _run_refused("demo", capsys, fit_env)
    assert "does not run with PUMPWATCH_ENVIRONMENT=production" in err


def _set(**values: str | None) -> dict[str, str | None]:
    return {f"PUMPWATCH_{key}": value for key, value in values.items()}


BROKER_ROLES = ["collect", "serve", "schedule", "up", "simulate"]
SERIES_ROLES = ["collect", "serve", "schedule", "up"]
STATE_ROLES = ["serve", "schedule", "up"]

CASES: list[tuple[str, str, dict[str, str | None], str]] = [
    *[(role, "no broker: the in-process one", _set(MQTT__URL=None), "no broker URL")
      for role in BROKER_ROLES],
    *[(role, "plain-text broker with credentials", _set(MQTT__URL="mqtt://u:p@127.0.0.1:1883"),
       "plain-text mqtt://") for role in BROKER_ROLES],
    *[(role, "plain-text anonymous broker", _set(MQTT__URL="mqtt://127.0.0.1:1883"),
       "no credentials") for role in BROKER_ROLES],
    *[(role, "TLS broker without credentials", _set(MQTT__URL="mqtts://127.0.0.1:8883"),
       "no credentials") for role in BROKER_ROLES],
    ("edge", "plain-text room broker", _set(MQTT__URL="mqtt://room:pw@127.0.0.1:1883"),
     "plain-text mqtt://"),
    *[(role, "embedded series store", _set(INFLUX__URL=None), "embedded series store")
      for role in SERIES_ROLES],
    *[(role, "InfluxDB over plain http", _set(INFLUX__URL="http://127.0.0.1:8086"),
       "InfluxDB over plain http") for role in SERIES_ROLES],
    *[(role, "InfluxDB without credentials", _set(INFLUX__USERNAME=None),
       "InfluxDB without credentials") for role in SERIES_ROLES],
    *[(role, "SQLite state", _set(API__DATABASE_URL=None), "state database is SQLite")
      for role in STATE_ROLES],
    *[(role, "PostgreSQL without a password",
       _set(API__DATABASE_URL="postgresql://pumpwatch@db.example/pumpwatch"), "has no password")
      for role in STATE_ROLES],
    *[(role, "cookies not Secure", _set(API__SECURE_COOKIES="false"), "not marked Secure")
      for role in ("serve", "up")],
    *[(role, "no signing key", _set(SIGNING__KEY_FILE=None), "no signing key")
      for role in ("collect", "schedule", "edge")],
    ("collect", "a signing key without its id", _set(SIGNING__KEY_ID=None), "has no id"),
    ("edge", "an edge signing under another id", _set(SIGNING__KEY_ID="room2-gw"),
     "its edge id as key id"),
    ("serve", "no trusted collector keys", _set(SIGNING__TRUSTED_DIR=None),
     "no trusted collector keys"),
    ("collect", "a share group without trusted collector keys",
     _set(SIGNING__TRUSTED_DIR=None, COLLECTOR__SHARE_GROUP="centre"),
     "member of a shared-subscription group"),
]


@pytest.mark.parametrize(("role", "case", "change", "expected"), CASES,
                         ids=[f"{role}: {case}" for role, case, _c, _e in CASES])
def test_an_insecure_setting_is_refused_before_anything_opens(
        role: str, case: str, change: dict[str, str | None], expected: str, fit_env: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in change.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    err = _run_refused(role, capsys, fit_env)
    assert "refusing a production start" in err
    assert expected in err, err


@pytest.mark.parametrize("role", ["collect", "up"])
def test_a_centre_without_its_edges_keys_is_refused(role: str, fit_env: Path, secrets: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (secrets / "trusted" / "room1-gw.key").unlink()
    monkeypatch.setattr(sys.modules[__name__], "SITE", EDGE_SITE)
    err = _run_refused(role, capsys, fit_env)
    assert "no key for edge room1-gw" in err


def test_an_edge_uplink_in_plain_text_is_refused(fit_env: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "EDGE_UPLINK", "mqtt://edge-room1-gw:pw@127.0.0.1:1883")
    err = _run_refused("edge", capsys, fit_env)
    assert "PUMPWATCH_EDGE__UPLINK_URL is plain-text" in err


def test_a_demo_login_is_refused_before_the_api_listens(
        fit_env: Path, postgres: Postgres, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The one check that needs the state database: it runs after the migration, before the port opens."""
    # Through the server's Unix socket: a password-less URL production accepts (peer, same machine).
    url = (f"postgresql+psycopg://{postgres.user}@/{postgres.database}"
           f"?host={postgres.directory / 'sock'}&port={postgres.port}")
    monkeypatch.setenv("PUMPWATCH_API__DATABASE_URL", url)
    engine = make_engine(url)
    upgrade(engine)
    auth = AuthService(session_factory(engine), SystemClock())
    if auth.get_by_username("operator") is None:
        auth.create_user("operator", demo_password("operator"), ["operator"])
    engine.dispose()
    with socket.socket() as probe:  # a port the API would take
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _watching["threads"] = {t.ident for t in threading.enumerate() if t is not threading.current_thread()}
    _seen.clear()
    _watching["on"] = True
    try:
        code = main(["serve", "--site", str(SITE), "--port", str(port)])
    finally:
        _watching["on"] = False
    err = capsys.readouterr().err
    assert code == 1
    assert "user 'operator' still has its published demo password" in err
    assert [event for event, _args in _seen if event == "socket.bind"] == []

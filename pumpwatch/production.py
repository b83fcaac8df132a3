"""What a production start refuses, per role, before anything opens a port or touches a database.

`pumpwatch <role>` with `PUMPWATCH_ENVIRONMENT=production` runs `role_problems` on the command line,
before the event loop starts: a non-empty list is printed and the process exits 1 without binding a
port, starting an in-process broker or creating a file. `pumpwatch demo` (published logins, simulated
devices) is refused first thing. What needs the state database (demo logins still holding their
published passwords) is checked after the migration, still before any port: `api.production`.

The decisions:

- **Broker**: a URL is required (none means the in-process broker, which takes anyone), `mqtts://`
  only (`mqtt://` sends the password and every alarm in clear, credentials or not), with this
  process's own username and password. An edge without `PUMPWATCH_MQTT__URL` has no room broker at
  all, which is fine; its uplink follows the same rule.
- **Series store**: an InfluxDB URL is required (the embedded store is one machine's file, which other
  roles cannot read), with credentials, and over `https://` (basic auth and tokens travel in every
  request's headers).
- **State database**: PostgreSQL (SQLite is one machine's file: replicas would each keep their own
  tasks), with a password, unless the connection needs none because it is a Unix socket (peer
  authentication on the same machine) or `sslmode=verify-full` with a client certificate
  (`sslcert`, `sslkey`). A password over plain TCP is accepted: PostgreSQL's SCRAM-SHA-256 never
  sends it.
- **Cookies**: `PUMPWATCH_API__SECURE_COOKIES=true` where the API runs (TLS in front of it, or its own:
  `PUMPWATCH_API__TLS_CERT` / `TLS_KEY`).
- **Signing keys** (`pumpwatch.signing`): a role whose messages cross to another process signs them:
  `collect`, `schedule` (its rotation alarms), `edge` (key id = edge id). A role that takes them
  verifies: `serve` (collectors' keys), `collect` and `up` of a site with `edges:` (each edge's key).
  `up` passes its own events in memory and needs no key of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.portfolio import Portfolio, as_portfolio
from pumpwatch.settings import Settings
from pumpwatch.signing import load_key, load_keyring
from pumpwatch.site import Site

ROLES = ("collect", "serve", "schedule", "up", "edge", "simulate", "demo")
DEMO_REFUSED = ("the demo (published logins, simulators) does not run with PUMPWATCH_ENVIRONMENT=production; "
                "use `pumpwatch up` or the roles one by one")

_BROKER = {"collect", "serve", "schedule", "up", "simulate"}
_SERIES = {"collect", "serve", "schedule", "up"}
_STATE = {"serve", "schedule", "up"}
_COOKIES = {"serve", "up"}
_SIGNS = {"collect", "schedule", "edge"}


def role_problems(settings: Settings, role: str, site: Site | Portfolio | None) -> list[str]:
    """Everything that makes this configuration unfit to run `role` in production (empty when fit).

    `site` (a site or a whole deployment) tells which edges there are (None: no edges).
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    if role == "demo":
        return [DEMO_REFUSED]
    problems: list[str] = []
    if role in _BROKER or (role == "edge" and settings.mqtt.url):
        problems += broker_problems(settings.mqtt.url, "PUMPWATCH_MQTT__URL")
    if role == "edge":
        problems += broker_problems(settings.edge.uplink, "PUMPWATCH_EDGE__UPLINK_URL")
    if role in _SERIES:
        problems += series_problems(settings)
    if role in _STATE:
        problems += database_problems(settings.api.database_url)
    if role in _COOKIES and not settings.api.secure_cookies:
        problems.append("session cookies are not marked Secure (serve over TLS, set "
                        "PUMPWATCH_API__SECURE_COOKIES=true)")
    problems += signing_problems(settings, role, site)
    return problems


def broker_problems(url: str | None, setting: str) -> list[str]:
    """What is wrong with a broker URL for production."""
    if not url:
        return [f"no broker URL: the in-process broker accepts anyone (set {setting}=mqtts://user:password@host)"]
    try:
        broker = BrokerAddress.parse(url)
    except ValueError as err:
        return [f"{setting}: {err}"]
    problems = []
    if not broker.tls:
        problems.append(f"{setting} is plain-text {urlsplit(url).scheme}://: passwords and alarms would "
                        "travel in clear (use mqtts://)")
    if not broker.username or not broker.password:
        problems.append(f"the broker URL has no credentials ({setting}=mqtts://user:password@host): "
                        "each process logs in with its own identity")
    return problems


def series_problems(settings: Settings) -> list[str]:
    """What is wrong with the series store for production."""
    influx = settings.influx
    if not influx.url:
        return ["the embedded series store is one machine's file (set PUMPWATCH_INFLUX__URL)"]
    credentials = influx.token is not None or (influx.username is not None and influx.password is not None)
    if not credentials:
        return ["InfluxDB without credentials (set PUMPWATCH_INFLUX__TOKEN or USERNAME/PASSWORD)"]
    if urlsplit(influx.url).scheme != "https":
        return ["InfluxDB over plain http: its credentials would travel in clear (use https://, with "
                "PUMPWATCH_INFLUX__CA_FILE for the site's own CA)"]
    return []


def database_problems(url: str | None) -> list[str]:
    """What is wrong with the state database URL for production."""
    if not url or url.startswith("sqlite"):
        return ["the state database is SQLite: use PostgreSQL (PUMPWATCH_API__DATABASE_URL)"]
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        return [f"PUMPWATCH_API__DATABASE_URL: {err}"]
    if not parsed.drivername.startswith("postgresql"):
        return [f"the state database is {parsed.drivername}: use PostgreSQL (PUMPWATCH_API__DATABASE_URL)"]
    if parsed.password:
        return []
    query = {key: str(value) for key, value in parsed.query.items()}
    socket = not parsed.host or query.get("host", "").startswith("/")
    certificate = query.get("sslmode") == "verify-full" and "sslcert" in query and "sslkey" in query
    if socket or certificate:
        return []
    return ["the PostgreSQL URL has no password (give one, or connect through a Unix socket, or with "
            "sslmode=verify-full and a client certificate: sslcert, sslkey)"]


def signing_problems(settings: Settings, role: str, site: Site | Portfolio | None) -> list[str]:
    """Missing or unusable signing keys for what this role sends to or takes from other processes."""
    cfg = settings.signing
    edges = list(as_portfolio(site).edge_estates()) if site is not None else []
    problems: list[str] = []
    if role in _SIGNS:
        problems += _own_key_problems(settings, settings.edge.id if role == "edge" else None)
    try:
        if role == "serve" and not load_keyring(cfg.trusted_dir, leave_out=edges):
            problems.append("no trusted collector keys: the API would believe any alarm event on the broker "
                            "(set PUMPWATCH_SIGNING__TRUSTED_DIR to a directory of <key id>.key files)")
        if (role == "collect" and settings.collector.share_group
                and not load_keyring(cfg.trusted_dir, leave_out=edges)):
            problems.append("no trusted collector keys: a member of a shared-subscription group would feed "
                            "its rules and alarm state whatever live readings and alarm events the broker "
                            "carries (set PUMPWATCH_SIGNING__TRUSTED_DIR to the group's <key id>.key files)")
        if role in ("collect", "up") and edges:
            trusted = load_keyring(cfg.trusted_dir, only=edges)
            missing = [edge for edge in edges if edge not in trusted]
            if missing:
                problems.append(f"no key for edge {', '.join(missing)} in PUMPWATCH_SIGNING__TRUSTED_DIR "
                                "(<edge id>.key): its batches and alarms would be refused")
    except ValueError as err:
        problems.append(str(err))
    return problems


def _own_key_problems(settings: Settings, edge_id: str | None) -> list[str]:
    cfg = settings.signing
    if cfg.key_file is None:
        return ["no signing key: other processes could not tell this one's messages from forgeries "
                "(set PUMPWATCH_SIGNING__KEY_FILE and PUMPWATCH_SIGNING__KEY_ID)"]
    problems = []
    if edge_id is None and cfg.key_id is None:
        problems.append("the signing key has no id (set PUMPWATCH_SIGNING__KEY_ID, e.g. collector-a)")
    if edge_id is not None and cfg.key_id not in (None, edge_id):
        problems.append(f"an edge signs with its edge id as key id: {cfg.key_id!r} is not {edge_id!r}")
    try:
        load_key(Path(cfg.key_file))
    except ValueError as err:
        problems.append(str(err))
    return problems


def refusal_text(problems: Iterable[str]) -> str:
    """The message printed for a refused production start."""
    return "refusing a production start:\n  - " + "\n  - ".join(problems)

"""What a production start refuses: demo logins, anonymous or plain-text transports, insecure cookies."""

from __future__ import annotations

from maintenance.accounts import DEMO_USERS, demo_password
from maintenance.auth import AuthService
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.settings import Settings


def production_problems(settings: Settings, auth: AuthService) -> list[str]:
    """Everything that makes this configuration unfit for production (empty when fit)."""
    problems = []
    for username, _name, _roles in DEMO_USERS:
        user = auth.get_by_username(username)
        if user is not None and auth.verify_password(user.password_hash, demo_password(username)):
            problems.append(f"user {username!r} still has its published demo password")
    if not settings.mqtt.url:
        problems.append("no broker URL: the in-process broker accepts anyone (set PUMPWATCH_MQTT__URL)")
    else:
        broker = BrokerAddress.parse(settings.mqtt.url)
        if not broker.username or not broker.password:
            problems.append("the broker URL has no credentials (mqtt://user:password@host)")
    if not settings.api.secure_cookies:
        problems.append("session cookies are not marked Secure "
                        "(serve over TLS, set PUMPWATCH_API__SECURE_COOKIES=true)")
    influx = settings.influx
    if influx.url and not (influx.token or (influx.username and influx.password)):
        problems.append("InfluxDB without credentials (set PUMPWATCH_INFLUX__TOKEN or USERNAME/PASSWORD)")
    if not settings.api.database_url or settings.api.database_url.startswith("sqlite"):
        problems.append("the state database is SQLite: use PostgreSQL (PUMPWATCH_API__DATABASE_URL)")
    return problems

"""Accounts made outside the web UI: `pumpwatch add-user`, and the demo's published logins.

A production start refuses the published demo logins, so the first account is made from the command
line against the state database (`PUMPWATCH_API__DATABASE_URL`). The password is read from standard
input (a pipe or a secret file) or asked twice on a terminal; it never appears in the arguments.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Sequence
from typing import TextIO

from maintenance.auth import AuthService
from maintenance.db import make_engine, session_factory, state_url, upgrade
from maintenance.errors import Conflict, InvalidInput
from pumpwatch.clock import SystemClock
from pumpwatch.settings import Settings

DEMO_USERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("admin", "管理员 Admin", ("admin",)),
    ("operator", "值班员 Operator", ("operator",)),
    ("tech", "维修技工 Technician", ("technician",)),
    ("tech2", "维修技工二 Technician 2", ("technician",)),
    ("supervisor", "工程主管 Supervisor", ("supervisor",)),
    ("director", "管理处主任 Director", ("director",)),
)


def demo_password(username: str) -> str:
    """The demo login's password (demo only: a production start refuses these)."""
    return f"{username}-demo-2026"


# A deployment of several estates also gets, per estate, people who hold their role for it alone.
ESTATE_DEMO_USERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("technician", "维修技工 Technician", ("technician",)),
    ("supervisor", "工程主管 Supervisor", ("supervisor",)),
)


def estate_demo_username(role: str, estate: str) -> str:
    """The login of an estate's own demo person, e.g. `technician-harbour-view`."""
    return f"{role}-{estate}"


def may_be_estate_demo_login(username: str) -> bool:
    """Whether a username has the form of an estate's demo person (its password is then worth a check)."""
    return any(username.startswith(f"{role}-") for role, _name, _roles in ESTATE_DEMO_USERS)


def ensure_demo_users(auth: AuthService, estates: Sequence[str] = ()
                      ) -> list[tuple[str, str, tuple[str, ...]]]:
    """Create the demo logins that are missing; returns (username, password, roles).

    The organisation-wide demo people always; with more than one estate, for each estate also
    `technician-<estate>` and `supervisor-<estate>`, whose roles are held for that estate only (a
    login that exists already is left as it is).
    """
    wanted: list[tuple[str, str, tuple[str, ...], list[str] | None]] = [
        (username, name, roles, None) for username, name, roles in DEMO_USERS]
    if len(estates) > 1:
        wanted += [(estate_demo_username(role, estate), f"{name} ({estate})", roles, [estate])
                   for estate in estates for role, name, roles in ESTATE_DEMO_USERS]
    out = []
    for username, name, roles, scope in wanted:
        if auth.get_by_username(username) is None:
            auth.create_user(username, demo_password(username), roles, display_name=name, estates=scope)
        out.append((username, demo_password(username), roles))
    return out


def read_password(stdin: TextIO = sys.stdin) -> str:
    """The new password: the first line of a pipe, or typed twice on a terminal."""
    if not stdin.isatty():
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise InvalidInput("the two passwords differ")
    return first


def add_user(settings: Settings, username: str, roles: Sequence[str], display_name: str | None,
             password: str) -> str:
    """Create an active user in the state database (migrating it first); returns a line to print."""
    engine = make_engine(state_url(settings))
    try:
        upgrade(engine)
        auth = AuthService(session_factory(engine), SystemClock())
        user = auth.create_user(username, password, roles, display_name=display_name)
    finally:
        engine.dispose()
    return f"created user {user.username!r} (#{user.id}) with roles {', '.join(user.roles)}"


def run(settings: Settings, username: str, roles: Sequence[str], display_name: str | None) -> int:
    """The command: 0 when created, 2 when the input is refused (taken name, short password, bad role)."""
    try:
        print(add_user(settings, username, roles, display_name, read_password()))
    except (InvalidInput, Conflict) as err:
        print(f"pumpwatch add-user: {err}", file=sys.stderr)
        return 2
    return 0

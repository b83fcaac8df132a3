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


def ensure_demo_users(auth: AuthService) -> list[tuple[str, str, tuple[str, ...]]]:
    """Create the demo logins that are missing; returns (username, password, roles)."""
    out = []
    for username, name, roles in DEMO_USERS:
        if auth.get_by_username(username) is None:
            auth.create_user(username, demo_password(username), roles, display_name=name)
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

"""`pumpwatch add-user` as a process: the first login of a production database, on both backends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from maintenance.auth import AuthService
from maintenance.db import make_engine, session_factory
from pumpwatch.clock import SystemClock

# `pumpwatch add-user` run as its own process four times a backend (3-6 s a backend).
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]


def add_user(url: str, tmp_path: Path, *args: str, password: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PUMPWATCH_API__DATABASE_URL": url, "PUMPWATCH_COLLECTOR__STATE_DIR": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "pumpwatch", "add-user", *args], input=password + "\n",
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False)


def test_the_first_admin_is_made_from_the_command_line(empty_db_url: str, tmp_path: Path) -> None:
    made = add_user(empty_db_url, tmp_path, "wang.admin", "--role", "admin", "--role", "supervisor",
                    "--display-name", "王工 Wang", password="a long secret phrase")
    assert made.returncode == 0, made.stderr
    assert "created user 'wang.admin'" in made.stdout
    assert "a long secret phrase" not in made.stdout + made.stderr

    engine = make_engine(empty_db_url)  # migrated by the command
    try:
        auth = AuthService(session_factory(engine), SystemClock())
        user = auth.get_by_username("wang.admin")
        assert user is not None
        assert (user.display_name, sorted(user.roles), user.active) == ("王工 Wang", ["admin", "supervisor"],
                                                                         True)
        assert auth.verify_password(user.password_hash, "a long secret phrase")
    finally:
        engine.dispose()

    again = add_user(empty_db_url, tmp_path, "wang.admin", "--role", "admin", password="another long one")
    assert again.returncode == 2
    assert "taken" in again.stderr
    short = add_user(empty_db_url, tmp_path, "li.tech", "--role", "technician", password="short")
    assert short.returncode == 2
    assert "at least 8 characters" in short.stderr
    bad_role = add_user(empty_db_url, tmp_path, "zhao", "--role", "plumber", password="long enough pw")
    assert bad_role.returncode == 2
    assert "invalid choice" in bad_role.stderr

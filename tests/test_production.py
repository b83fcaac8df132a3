"""A production start refuses what is only fit for a demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import Mosquitto

# `pumpwatch demo` and `pumpwatch up` as their own processes, refusing to run in production.
pytestmark = pytest.mark.e2e


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, PUMPWATCH_ENVIRONMENT="production",
                PUMPWATCH_COLLECTOR__STATE_DIR=str(tmp_path / "state"), **env)
    return subprocess.run([sys.executable, "-m", "pumpwatch", *args], env=full, capture_output=True,
                          text=True, timeout=60, check=False)


def test_the_demo_does_not_run_in_production(tmp_path: Path) -> None:
    done = run(["demo", "--port", "0", "--mqtt-port", "0", "--modbus-port-base", "0"], tmp_path)
    assert done.returncode == 1
    assert "does not run with PUMPWATCH_ENVIRONMENT=production" in done.stderr
    assert "Traceback" not in done.stderr


def test_up_in_production_lists_every_insecure_setting(tmp_path: Path, mosquitto: Mosquitto) -> None:
    done = run(["up", "--mqtt", mosquitto.url, "--port", "0"], tmp_path,
               PUMPWATCH_INFLUX__URL="http://127.0.0.1:9")
    assert done.returncode == 1
    for expected in ("broker URL has no credentials", "not marked Secure", "InfluxDB without credentials",
                     "state database is SQLite"):
        assert expected in done.stderr
    assert "Traceback" not in done.stderr

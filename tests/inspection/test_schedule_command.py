"""`pumpwatch schedule` as its own process: no collector, APScheduler on the wall clock, tasks in the DB."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from maintenance.models import Task
from tests.support.services import Mosquitto
from tests.support.sites import SHANGHAI, own_key, plan_tasks

# `pumpwatch schedule` as its own process, waiting for the wall clock (about 8 s a backend).
pytestmark = pytest.mark.e2e

MINIMAL = Path(__file__).parents[2] / "examples" / "minimal.yaml"


def test_schedule_alone_creates_the_task_when_its_time_comes(
        tmp_path: Path, mosquitto: Mosquitto, db_url: str, sessions: sessionmaker[Session]) -> None:
    soon = (datetime.now(SHANGHAI) + timedelta(seconds=8)).replace(microsecond=0)
    site = tmp_path / "site.yaml"
    site.write_text(MINIMAL.read_text() + f"""
plans:
  regulation: false
  plans:
    - id: look
      name: {{zh: 看一眼, en: Have a look}}
      scope: room
      schedule: {{type: every_days, days: 1, at: "{soon.time().isoformat()}"}}
""")
    log = tmp_path / "schedule.log"
    env = dict(os.environ, PUMPWATCH_COLLECTOR__STATE_DIR=str(tmp_path / "state"),
               PUMPWATCH_COLLECTOR__CLIENT_ID=f"sched-{uuid.uuid4().hex[:8]}",
               PUMPWATCH_API__DATABASE_URL=db_url)
    env.pop("PUMPWATCH_INFLUX__URL", None)
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pumpwatch", "schedule", "--site", str(site),
                                 "--mqtt", mosquitto.url], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 40
        rows: list[Task] = []
        while not rows:
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            rows = plan_tasks(sessions, "look:")
            time.sleep(0.2)
        [task] = rows
        assert own_key(task) == f"look:room1@{soon.date().isoformat()}"
        assert not task.late
        assert abs((task.created_at - soon).total_seconds()) < 3
        text = log.read_text(errors="replace")
        assert "Inspection scheduler: 1 plans" in text
        assert "Collector:" not in text  # the scheduler runs without the collector
    finally:
        proc.terminate()
        assert proc.wait(20) == 0, log.read_text(errors="replace")

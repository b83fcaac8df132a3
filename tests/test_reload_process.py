"""`pumpwatch up` over a folder of estates takes an added, broken and removed estate file on SIGHUP.

The whole process: its deployment watcher hands each change to the collector, the scheduler, the
maintenance state and the API, which answers for the estates as they now are.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.pumpwatch.test_portfolio import estate_yaml
from tests.support.processes import PumpwatchProcess
from tests.support.services import Mosquitto

pytestmark = pytest.mark.e2e
PASSWORD = "reload password 1"


def _until(check: Callable[[], bool], process: PumpwatchProcess, what: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert process.proc is not None
        assert process.proc.poll() is None, process.text()[-3000:]
        assert time.monotonic() < deadline, f"not within {within} s: {what}\n{process.text()[-3000:]}"
        time.sleep(0.2)


@pytest.mark.timeout(180)
def test_an_estate_added_broken_and_removed_on_sighup_reaches_every_role(tmp_path: Path,
                                                                         mosquitto: Mosquitto) -> None:
    folder = tmp_path / "estates"
    folder.mkdir()
    (folder / "north.yaml").write_text(estate_yaml("north", port=5401), encoding="utf-8")
    env = dict(os.environ, PUMPWATCH_COLLECTOR__STATE_DIR=str(tmp_path / "state"),
               PUMPWATCH_COLLECTOR__RELOAD_INTERVAL="0", PUMPWATCH_METRICS__ENABLED="false",
               PUMPWATCH_COLLECTOR__CLIENT_ID=f"reload-{os.getpid()}")
    subprocess.run([sys.executable, "-m", "pumpwatch", "add-user", "boss", "--role", "supervisor"],
                   input=f"{PASSWORD}\n{PASSWORD}\n".encode(), env=env, check=True, capture_output=True)
    up = PumpwatchProcess("up", ["up", "--site", str(folder), "--mqtt", mosquitto.url, "--port", "0"], env,
                          tmp_path / "up.log")
    up.start()
    try:
        url = up.wait_url()
        with httpx.Client(base_url=url, timeout=10) as client:
            token = client.post("/api/auth/token", data={"username": "boss", "password": PASSWORD}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}

            def status(path: str) -> int:
                return client.get(path, headers=headers).status_code

            assert status("/api/rooms/room1/latest") == 200  # one estate: no estate needed
            assert up.proc is not None

            (folder / "south.yaml").write_text(estate_yaml("south", port=5402), encoding="utf-8")
            up.proc.send_signal(signal.SIGHUP)
            _until(lambda: status("/api/site?estate=south") == 200, up, "south served by the API")
            assert "estate south added" in up.text()  # the collector took it too
            assert status("/api/rooms/room1/latest") == 422  # two estates: say which
            assert status("/api/rooms/room1/latest?estate=south") == 200

            (folder / "south.yaml").write_text("site: {id: south\n", encoding="utf-8")
            up.proc.send_signal(signal.SIGHUP)
            _until(lambda: "estate south refused" in up.text(), up, "the broken file refused")
            assert status("/api/site?estate=south") == 200  # it keeps running as it was

            (folder / "south.yaml").unlink()
            up.proc.send_signal(signal.SIGHUP)
            _until(lambda: status("/api/site?estate=south") == 404, up, "south gone")
            assert "estate south removed" in up.text()
            assert status("/api/rooms/room1/latest") == 200  # one estate again
    finally:
        up.stop()

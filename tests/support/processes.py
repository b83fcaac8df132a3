"""A `pumpwatch` role run as its own OS process, with its own log: start, SIGKILL, stop, its URL."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_URL = re.compile(r"API and web UI: (http://\S+)")


@dataclass
class PumpwatchProcess:
    """`python -m pumpwatch <args>` with `env`, appending its output to `log`."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        """Start (again), appending to the log."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "pumpwatch", *self.args], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL and reap."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def text(self) -> str:
        """The log so far."""
        return self.log.read_text(errors="replace")

    def current_url(self) -> str | None:
        """The API URL this start printed, or None before it printed one."""
        found = _URL.findall(self.text())
        return found[self.starts - 1] if 0 < self.starts <= len(found) else None

    def wait_url(self, within: float = 60.0) -> str:
        """The API URL once printed; AssertionError with the log if the process dies or takes too long."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            url = self.current_url()
            if url is not None:
                return url
            assert self.proc is not None
            assert self.proc.poll() is None, self.text()[-2000:]
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not start:\n{self.text()[-2000:]}")


@contextlib.contextmanager
def running_demo(directory: Path, mqtt_url: str, influx_url: str, *,
                 status_every: float = 5.0) -> Iterator[tuple[str, PumpwatchProcess]]:
    """`pumpwatch demo` on free ports with this broker and InfluxDB, yielded once its logins exist."""
    tag = uuid.uuid4().hex[:8]
    env = dict(os.environ, PUMPWATCH_COLLECTOR__STATE_DIR=str(directory / "state"),
               PUMPWATCH_COLLECTOR__CLIENT_ID=f"demo-{tag}", PUMPWATCH_INFLUX__URL=influx_url,
               PUMPWATCH_INFLUX__DATABASE=f"demo_{tag}")
    demo = PumpwatchProcess("demo", ["demo", "--mqtt", mqtt_url, "--port", "0", "--modbus-port-base", "0",
                                     "--status-every", str(status_every)], env, directory / "demo.log")
    demo.start()
    try:
        url = demo.wait_url()
        deadline = time.monotonic() + 30
        while "Demo logins" not in demo.text():
            assert time.monotonic() < deadline, f"no demo logins:\n{demo.text()[-3000:]}"
            time.sleep(0.2)
        yield url, demo
    finally:
        demo.stop()

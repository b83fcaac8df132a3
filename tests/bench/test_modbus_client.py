"""bench.modbus_client: both clients read the same simulated device, each run measured."""

from __future__ import annotations

import json
from pathlib import Path

from bench import modbus_client
from bench.common import RESULTS_DIR


def test_both_clients_read_every_request_and_are_measured() -> None:
    assert modbus_client.main(["--registers", "5", "--requests", "50", "--repeat", "2",
                               "--name", "test_modbus_client"]) == 0
    path = RESULTS_DIR / "test_modbus_client.json"
    runs = json.loads(Path(path).read_text(encoding="utf-8"))["runs"]
    path.unlink()
    assert [(r["client"], r["run"]) for r in runs] == [
        ("pymodbus AsyncModbusTcpClient", 1), ("PumpWatch TcpLink", 1),
        ("pymodbus AsyncModbusTcpClient", 2), ("PumpWatch TcpLink", 2)]
    assert all(r["requests_per_s"] > 0 for r in runs)
    assert all(r["cpu_us_per_request"] >= 0 for r in runs)  # the process clock ticks in 10 ms

"""The goals run's table: each goal judged from its phase's results, a failed phase said as such."""

from __future__ import annotations

from typing import Any

from bench.goals import goal_rows, phases


def ingest(pw_cpu: float, nr_cpu: float, pw_rate: float, nr_rate: float, *, values: int = 5, lost: int = 0,
           subscriber: float = 100_000.0, writer: float = 200_000.0,
           offered: float = 150_000.0, collectors: int = 1) -> dict[str, Any]:
    """A `bench.peers --phases ingest` results file, reduced to what the table reads."""
    pumpwatch = {"collector_cpu_us_per_reading": pw_cpu, "lost": lost, "sustained_rate": pw_rate,
                 "collector_cpu_pct_of_core": pw_rate * pw_cpu / 1e4,
                 "foreign_cpu_pct_of_core": 3.0, "messages_published": 1000, "publisher_cpu_s": 0.01,
                 "readings_published": 5 * offered, "publish_rate": offered,
                 "publisher": {"kind": "mqttjs", "cpu_s_per_process": [1.0, 3.0]}}
    nodered = {"cpu_us_per_reading": nr_cpu, "lost": 0, "sustained_rate": nr_rate,
               "foreign_cpu_pct_of_core": 5.0}
    return {"settings": {"values_per_message": values, "collectors": collectors},
            "ratios": {"ingest_cpu_per_reading_pumpwatch_over_nodered": pw_cpu / nr_cpu,
                       "ingest_rate_pumpwatch_over_nodered": pw_rate / nr_rate},
            "ingest": {"pumpwatch": pumpwatch, "nodered": nodered, "mqtt_subscriber": {"rate": subscriber},
                       "influx_writer": {"rate": writer}}}


def test_every_goal_is_judged_from_its_phase() -> None:
    done: dict[str, dict[str, Any]] = {
        "steady_v1": {"results": ingest(10.0, 60.0, 5000, 5000, values=1)},  # 0.17 of Node-RED: met
        "steady_v5": {"results": ingest(20.0, 22.0, 20000, 20000)},  # 0.91: not met
        "max_v5": {"results": ingest(12.0, 14.0, 75_000, 59_000)},  # above Node-RED, 0.75 of 100,000: met
        "max_v50": {"results": ingest(9.5, 7.0, 79_000, 129_000, values=50)},  # below Node-RED: not met
        "modbus_500": {"results": {"modes": [{
            "mode": "service", "readings_per_s": 10_000, "cpu_pct_of_core": 64.0, "cycles_min": 20,
            "cycles_expected_per_device": 20, "foreign_cpu_pct_of_core": 2.0}]}},
        "alarm_latency": {"results": {"roles": "split", "latency_ms": {
            "all": {"samples": 200, "p50": 12.0, "p99": 61.0},
            "all, at the broker": {"samples": 200, "p50": 8.0, "p99": 40.0}}}},
        "api_latency": {"results": {"results": {"influxdb:open:latest": {"p99_ms": 10.0},
                                                "influxdb:open:tasks": {"p99_ms": 23.0},
                                                "influxdb:open": {"requests_per_s": 95}}}},
        "modbus_50": {"returncode": 1},  # crashed: no results file
    }
    rows = {row["run"]: row for row in goal_rows(done)}
    assert rows["steady_v1"]["met"] is True
    assert rows["steady_v5"]["met"] is False
    assert rows["steady_v50"]["pumpwatch"] == "phase failed"
    assert rows["steady_v50"]["met"] is None
    assert rows["max_v5"]["met"] is True
    assert rows["max_v50"]["met"] is False
    assert rows["modbus_50"]["pumpwatch"] == "phase failed"
    assert rows["modbus_500"]["met"] is True
    assert rows["alarm_latency"]["met"] is False
    assert "at the broker p50 8.0, p99 40.0 ms" in rows["alarm_latency"]["pumpwatch"]
    assert rows["api_latency"]["met"] is True
    generators = rows["every ingest phase"]
    assert generators["met"] is True  # at max rate both phases offered more than PumpWatch stored
    assert "publisher process of any phase 60 % of a core" in generators["pumpwatch"]  # 3 CPU s in 5 s


def test_a_max_rate_phase_that_lost_readings_or_outran_its_load_is_not_met() -> None:
    lossy = {"max_v5": {"results": ingest(12.0, 14.0, 75_000, 59_000, lost=3)}}
    assert {r["run"]: r for r in goal_rows(lossy)}["max_v5"]["met"] is False
    starved = {"max_v1": {"results": ingest(17.0, 39.0, 41_000, 21_000, values=1, offered=41_000)}}
    assert {r["run"]: r for r in goal_rows(starved)}["every ingest phase"]["met"] is False


def test_the_run_has_every_shape_steady_and_at_max_rate() -> None:
    names = [phase.name for phase in phases(20, 10)]
    assert names == ["steady_v1", "steady_v5", "steady_v50", "max_v1", "max_v5", "max_v50",
                     "modbus_50", "modbus_500", "alarm_latency", "api_latency"]
    steady_v1 = phases(20, 10)[0].arguments
    assert steady_v1[steady_v1.index("--rate") + 1] == "5000"
    assert phases(20, 10)[3].arguments[phases(20, 10)[3].arguments.index("--seconds") + 1] == "10"
    for phase in phases(20, 10, max_collectors=3):  # max rate per machine: a collector process per core
        expected = "3" if phase.name.startswith("max_") else None
        arguments = phase.arguments
        found = arguments[arguments.index("--collectors") + 1] if "--collectors" in arguments else None
        assert found == expected


def test_a_max_rate_row_says_how_many_collectors_and_the_rate_per_core_they_used() -> None:
    done = {"max_v5": {"results": ingest(12.5, 14.0, 80_000, 59_000, collectors=2)}}
    row = {r["run"]: r for r in goal_rows(done)}["max_v5"]
    assert "2 collector processes, 80,000/s, 80,000/s per core used" in row["pumpwatch"]  # 100 % of a core
    assert row["met"] is True

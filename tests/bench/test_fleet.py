"""The fleet benchmark at tiny scale: its load covers every sensor with valid readings, its scheduler year
makes the plan tasks, and the whole run stores what it published."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import fleet
from bench.fleet_load import body, messages
from bench.fleet_year import run_year
from collector.estates import EstateRules, source_view
from collector.pipeline.validate import Validator
from collector.rules.engine import AlarmEngine
from collector.rules.rulebook import Rulebook
from collector.sources.mqtt_decode import MqttDecoder
from pumpwatch.alarm_events import AlarmEvent
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock
from pumpwatch.portfolio import load_portfolio
from tests.support.services import Postgres
from tests.support.state import advance


def test_the_load_gives_every_mqtt_sensor_of_the_fleet_one_valid_reading_a_second(tmp_path: Path) -> None:
    deployment = fleet.write_fleet_here(tmp_path, 3)
    portfolio = load_portfolio(deployment)
    catalog = SensorCatalog(portfolio)
    decoder = MqttDecoder(tuple(m for site in portfolio for m in source_view(site).mqtt), catalog)
    validator = Validator(catalog)
    load = messages(deployment)
    for second in range(6):  # the values move each second, valid all the same (codes and counters too)
        keys: list[str] = []
        for message in load:
            now = 1_800_000_000.0 + second
            decoded = decoder.decode(message.topic, body(message, second), now)
            assert decoded.rejected == []
            assert len(decoded.readings) == message.readings
            verdict = validator.judge(decoded.readings, now)  # the collector's own checks
            assert (len(verdict.kept), verdict.rejected, verdict.flagged) == (message.readings, {}, {})
            keys += [reading.sensor for reading in decoded.readings]
        wanted = sorted(info.key for info in catalog if info.sensor.source == "mqtt")
        assert sorted(keys) == wanted  # every sensor once: no sensor silent, none twice
    assert 35 * 6 <= sum(m.readings for m in load) <= 45 * 6  # about 40 sensors a room, two rooms an estate


def test_the_load_raises_no_alarm_of_the_collectors_rules(tmp_path: Path) -> None:
    """Readings, not an alarm storm: every rule the collector runs stays quiet for ten minutes of the load,
    built-in limits included (a pump's current against its rated current, which its site file does not
    state as a threshold)."""
    deployment = fleet.write_fleet_here(tmp_path, 4)
    portfolio = load_portfolio(deployment)
    catalog = SensorCatalog(portfolio)
    decoder = MqttDecoder(tuple(m for site in portfolio for m in source_view(site).mqtt), catalog)
    clock = FakeClock()
    rules = EstateRules(clock)
    events: list[AlarmEvent] = []
    rules.listeners.append(events.append)
    for site in portfolio:
        book = Rulebook(site)
        rules.put(site.site.id, AlarmEngine(book.rules, clock, history=book.history))
    assert any(rule.key.alarm_type == "current_high" for rule in rules.rules)  # the built-in limit is there
    load = messages(deployment)
    for second in range(600):
        readings = [reading for message in load
                    for reading in decoder.decode(message.topic, body(message, second), clock.now()).readings]
        rules.on_readings(readings)
        rules.evaluate_all()
        advance(clock, 1.0)
    assert [(e.key.alarm_type, e.sensor, e.value) for e in events] == []


def test_collectors_split_by_estate_take_every_topic_once_and_share_nothing(tmp_path: Path) -> None:
    deployment = fleet.write_fleet_here(tmp_path, 5)
    portfolio = load_portfolio(deployment)
    parts = fleet.collector_parts(deployment, 2, "estates")
    estates = [e for part, _ in parts for e in part or []]
    assert sorted(estates) == sorted(portfolio.estates)  # every estate in exactly one part
    assert [len(part or []) for part, _ in parts] == [3, 2]
    topics = [t for _, part_topics in parts for t in part_topics]
    assert sorted(topics) == sorted({m.subscription for site in portfolio for m in site.mqtt})
    for part, part_topics in parts:
        assert all(t.split("/")[1] in (part or []) for t in part_topics)  # dtu/<estate>/..., z2m/<estate>/...
    shared = fleet.collector_parts(deployment, 2, "share")
    assert shared[0] == shared[1]
    assert shared[0][0] is None
    assert all(t.startswith(f"$share/{fleet.GROUP}/") for t in shared[0][1])


def test_the_scheduler_year_creates_the_plan_tasks_of_a_week(tmp_path: Path, postgres: Postgres) -> None:
    deployment = fleet.write_fleet_here(tmp_path, 1)
    url = fleet.state_database(postgres, f"year_test_{tmp_path.name[-8:].replace('-', '_')}")
    year = run_year(deployment, url, 7, 86_400, timeout=120)
    assert "error" not in year, year
    assert (year["estates"], year["rooms"]) == (1, 2)
    assert year["tasks_created"] == sum(year["tasks_by_kind"].values())
    assert year["tasks_by_kind"]["inspection"] >= 7 * 2  # the daily round of each room, every day
    assert year["late"] == 0
    assert year["peak_rss_mb"] >= year["rss_before_mb"] > 0


@pytest.mark.e2e  # whole processes: Mosquitto, InfluxDB, PostgreSQL, two collectors, the API, publishers
@pytest.mark.timeout(300)
def test_a_tiny_fleet_run_stores_every_published_reading(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bench.common.RESULTS_DIR", tmp_path)
    assert fleet.main(["--estates", "2", "--seconds", "3", "--clients", "2", "--open-alarms", "5",
                       "--tasks", "5", "--publishers", "2", "--phases", "ingest", "--name", "tiny"]) == 0
    ingest = json.loads((tmp_path / "tiny.json").read_text())["results"]["ingest"]
    assert ingest["published"]["readings"] > 0
    assert ingest["stored"] == ingest["published"]["readings"]
    assert all(route["errors"] == 0 and route["requests"] > 0 for route in ingest["routes"].values())

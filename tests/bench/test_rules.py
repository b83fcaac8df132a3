"""bench.rules: the engine of a small Modbus site, timed; the tick evaluates only the no-data rules."""

from __future__ import annotations

from bench.rules import measure


def test_the_timer_tick_of_a_quiet_site_evaluates_its_no_data_rules_only() -> None:
    result = measure(devices=2, registers=5, seconds=30, repeats=3)
    assert result["sensors"] == 10
    assert result["rules"] == 12  # a flatline rule per sensor, a no-data rule per device
    assert result["tick_rules_evaluated"] == 2
    assert result["batch_us_per_reading"] > 0
    assert result["tick_ms"] > 0


def test_steady_values_are_measured_too() -> None:
    result = measure(devices=1, registers=3, seconds=30, repeats=3, values="steady")
    assert result["values"] == "steady"
    assert result["rules"] == 4
    assert result["batch_us_per_reading"] > 0

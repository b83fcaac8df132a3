"""Structured logs: one JSON object per line with the extra fields kept."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from pumpwatch.logs import JsonFormatter, configure_logging


def test_json_lines_carry_level_logger_message_and_extra_fields() -> None:
    record = logging.LogRecord("collector.sources.modbus", logging.WARNING, __file__, 1,
                               "device %s offline", ("plc-dom",), None)
    record.device = "plc-dom"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "warning"
    assert entry["logger"] == "collector.sources.modbus"
    assert entry["message"] == "device plc-dom offline"
    assert entry["device"] == "plc-dom"
    assert entry["ts"].endswith("+00:00")


def test_exceptions_are_kept_in_the_json_line() -> None:
    try:
        raise ValueError("泵 broke")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: 泵 broke" in entry["error"]


def test_configure_logging_quietens_chatty_libraries(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    logging.getLogger("pymodbus").warning("noise")
    logging.getLogger("pumpwatch.test").info("kept")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["message"] for line in lines] == ["kept"]


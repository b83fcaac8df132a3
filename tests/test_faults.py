"""The short form of the fault drill (`bench/faults.py`): every fault in turn, 0 lost, 0 duplicated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.faults import PHASES, run_faults

# A fault drill: every server and role stopped or SIGKILLed in turn under load (about 50 s).
pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"


@pytest.mark.timeout(600)
async def test_each_fault_loses_and_duplicates_nothing_and_alarms_still_become_tasks(tmp_path: Path) -> None:
    result = await run_faults(outage=4.0, rate=150.0, work=tmp_path)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "faults.json").write_text(json.dumps(result, indent=2))
    assert [p["fault"] for p in result["phases"]] == list(PHASES)
    for phase in result["phases"]:
        assert phase["published"] > 0, phase
        assert phase["lost"] == 0, phase
        assert phase["duplicated"] == 0, phase
        assert phase["alarm_present"], phase
        assert phase["task_present"], phase
    assert result["total"]["lost"] == 0
    assert result["total"]["duplicated"] == 0

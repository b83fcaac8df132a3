"""Fuzz the whole OpenAPI surface (schemathesis) as an admin: no 5xx, every refusal a documented problem.

Each operation gets generated requests, valid and invalid; the app runs in-process on a SQLite state
database seeded with an alarm and a task. The counts of cases tried are written to
test-artifacts/fuzz.json.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.core.failures import FailureGroup

from api.service import ApiService
from collector.stores.embedded import EmbeddedStore
from maintenance.db import make_engine, upgrade
from maintenance.service import MaintenanceService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock
from pumpwatch.settings import CollectorSettings, Settings
from pumpwatch.site import Severity, Text
from pumpwatch.sitefile import load_site

HV = "harbour-view"  # the estate of examples/site.yaml

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
OUTCOMES: Counter[str] = Counter()
# CI runs a fixed sample (the same cases every run); PUMPWATCH_FUZZ_EXPLORE=1 draws new ones, more of them.
EXPLORE = bool(os.environ.get("PUMPWATCH_FUZZ_EXPLORE"))
EXAMPLES = 150 if EXPLORE else 30
CONFORMANCE = [checks.status_code_conformance, checks.content_type_conformance,
               checks.response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    engine = make_engine(f"sqlite:///{tmp / 'state.db'}")
    upgrade(engine)
    clock = FakeClock()
    site = load_site(EXAMPLE)
    settings = Settings(collector=CollectorSettings(state_dir=tmp))
    state = MaintenanceService(site, settings, clock, engine)  # every service, as the roles build them
    admin = state.auth.create_user("fuzz", "fuzzing password 1",
                                   ["admin", "supervisor", "technician", "operator"])
    state.alarms.apply(AlarmEvent(AlarmAction.RAISED, AlarmKey("dom-ptank", "leak", HV), Severity.CRITICAL,
                                  clock.now(), "dom", Text(zh="漏水", en="leak"), 1.0, "dom-flange-leak"))
    store = EmbeddedStore(tmp / "series.db", SensorCatalog(site))
    api = ApiService(settings, state, store, LiveBus(), LiveBus())
    token = state.auth.issue_token(admin).token
    yield api.app, {"Authorization": f"Bearer {token}"}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fuzz.json").write_text(json.dumps({"cases": sum(OUTCOMES.values()),
                                                     "by_status": dict(OUTCOMES)}, indent=2))
    engine.dispose()


@pytest.mark.e2e  # About 1200 generated requests over every route (about 10 s).
def test_no_request_crashes_the_api(fuzz_app: tuple[Any, dict[str, str]]) -> None:
    app, headers = fuzz_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    failures: list[str] = []
    for operation in operations:
        if operation.path in ("/api/live", "/api/auth/logout"):
            continue  # a stream that never ends, and the one route that revokes the fuzzer's token

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None, derandomize=not EXPLORE)
        def fuzz(case: Any) -> None:
            response = case.call(headers=headers)
            OUTCOMES[str(response.status_code)] += 1
            where = f"{case.method} {case.formatted_path}"
            if response.status_code >= 500:
                failures.append(f"{where}: {response.status_code} {response.text[:300]}")
            elif response.status_code >= 400:
                kind = _header(response.headers, "content-type")
                body = response.json() if kind.startswith("application/") else {}
                problem = kind.startswith("application/problem+json")
                if not problem or body.get("status") != response.status_code:
                    failures.append(f"{where}: {response.status_code}, no problem: {response.text[:200]}")
            try:  # the answer is one the OpenAPI document lists, with its content type and schema
                case.validate_response(response, checks=CONFORMANCE)
            except FailureGroup as err:
                failures.append(f"{where}: {response.status_code} does not conform: {str(err)[:300]}")

        fuzz()
    assert len(operations) >= 25  # the surface was found
    assert failures == []


def _header(headers: Any, name: str) -> str:
    value = headers.get(name) or headers.get(name.title()) or ""
    return str(value[0] if isinstance(value, list) and value else value)

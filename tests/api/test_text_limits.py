"""Every free-text field a client sends has a length limit in the schema, and a title over it is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.context import ApiContext
from collector.stores.embedded import EmbeddedStore
from maintenance.alarms import AlarmService
from maintenance.auth import AuthService
from maintenance.tasks import TaskService
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock
from pumpwatch.sitefile import load_site
from tests.support.state import People

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"


@pytest.fixture
def ctx(tmp_path: Path, clock: FakeClock, auth: AuthService, tasks: TaskService,
        alarms: AlarmService) -> ApiContext:
    site = load_site(EXAMPLE)
    return ApiContext(site=site, catalog=SensorCatalog(site), store=EmbeddedStore(tmp_path / "series.db"),
                      readings=LiveBus(), alarm_events=LiveBus(), auth=auth, tasks=tasks, alarms=alarms,
                      clock=clock, attachments_dir=tmp_path / "files")


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def unbounded_strings(schema: dict[str, Any], components: dict[str, Any], where: str,
                      seen: set[str]) -> list[str]:
    """Paths of string fields in a request schema that take free text without a maxLength."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        seen = seen | {name}
    schema = _resolve(schema, components)
    found: list[str] = []
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            found += unbounded_strings(option, components, where, seen)
    kind = schema.get("type")
    if kind == "string" and "enum" not in schema and "const" not in schema and "format" not in schema \
            and "pattern" not in schema and "maxLength" not in schema:
        found.append(where)
    if kind == "array" and "items" in schema:
        found += unbounded_strings(schema["items"], components, f"{where}[]", seen)
    for name, prop in schema.get("properties", {}).items():
        found += unbounded_strings(prop, components, f"{where}.{name}", seen)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        found += unbounded_strings(extra, components, f"{where}.*", seen)
    return found


def test_every_free_text_field_of_every_request_body_has_a_length_limit(ctx: ApiContext) -> None:
    document = create_app(ctx).openapi()
    components = document.get("components", {}).get("schemas", {})
    unbounded: list[str] = []
    bodies = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            for media, body in content.items():
                if media == "application/json":
                    bodies += 1
                    unbounded += unbounded_strings(body["schema"], components, f"{method.upper()} {path}",
                                                   set())
    assert bodies > 20  # the walk saw the API's JSON bodies
    assert unbounded == []


def test_the_walk_finds_a_field_without_a_limit() -> None:
    components = {"Body": {"type": "object", "properties": {
        "title": {"type": "string"}, "note": {"type": "string", "maxLength": 10},
        "state": {"type": "string", "enum": ["a"]}, "tags": {"type": "array", "items": {"type": "string"}}}}}
    assert unbounded_strings({"$ref": "#/components/schemas/Body"}, components, "POST /x", set()) == [
        "POST /x.title", "POST /x.tags[]"]


async def test_a_task_title_over_its_limit_is_refused_and_nothing_is_stored(
        ctx: ApiContext, auth: AuthService, people: People) -> None:
    headers = {"Authorization": f"Bearer {auth.issue_token(people.supervisor).token}"}
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers) as http:
        before = (await http.get("/api/tasks")).json()["data"]
        resp = await http.post("/api/tasks", json={"title": "漏" * 300_000, "room": "dom",
                                                   "description": "a title of 900 kB"})
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert "title" in resp.text
        assert (await http.get("/api/tasks")).json()["data"] == before

"""`/healthz` (component status) and `/metrics` (Prometheus); both open, for probes and scrapers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import Ctx

router = APIRouter(tags=["health"])


_HEALTH = {"type": "object", "properties": {
    "status": {"type": "string", "enum": ["ok", "degraded"]},
    "components": {"type": "object", "additionalProperties": {
        "type": "object", "properties": {"status": {"type": "string"}, "detail": {"type": "string"}}}}}}


@router.get("/healthz", responses={
    200: {"description": "Every component is up", "content": {"application/json": {"schema": _HEALTH}}},
    503: {"description": "A component is down", "content": {"application/json": {"schema": _HEALTH}}}})
def healthz(ctx: Ctx) -> JSONResponse:
    """Each component's status; 503 when one is down."""
    components: dict[str, Any] = {}
    healthy = True
    for name, check in ctx.health.items():
        try:
            ok, detail = check()
        except Exception as err:  # a probe that fails reports the component as down
            ok, detail = False, f"{type(err).__name__}: {err}"
        components[name] = {"status": "up" if ok else "down", "detail": detail}
        healthy = healthy and ok
    return JSONResponse({"status": "ok" if healthy else "degraded", "components": components},
                        status_code=200 if healthy else 503)


@router.get("/metrics", response_class=Response, responses={
    200: {"description": "Prometheus text exposition", "content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(ctx: Ctx) -> Response:
    """Counters and gauges of every component in this process."""
    body = b"".join(generate_latest(registry) for registry in ctx.registries)
    return Response(body, media_type=CONTENT_TYPE_LATEST)

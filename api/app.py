"""The FastAPI application: routers, problem details, security headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from api import problems
from api.context import ApiContext
from api.ratelimit import RateLimiter
from api.routes import (
    alarms,
    approvals,
    auth,
    health,
    live,
    people,
    plans,
    readings,
    reports,
    site,
    tasks,
    users,
    web,
)

MAX_BODY = 12 * 1024 * 1024  # bytes; a larger request is refused before it is read


def create_app(ctx: ApiContext) -> FastAPI:
    """An app serving `ctx`."""
    app = FastAPI(title="PumpWatch", version="0.1.0",
                  description="Pump-room monitoring and maintenance: readings, alarms, tasks.")
    app.state.ctx = ctx
    app.state.login_limiter = RateLimiter(ctx.clock)
    problems.install(app)
    for module in (auth, site, readings, live, alarms, tasks, approvals, plans, users, people, reports,
                   health, web):
        app.include_router(module.router)

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return problems.problem(413, "Request too large", f"bodies are limited to {MAX_BODY} bytes",
                                    "too-large", request)
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return app

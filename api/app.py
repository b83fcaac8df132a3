"""The FastAPI application: routers, problem details, security headers."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
_SECURITY_HEADERS = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                     ("Referrer-Policy", "same-origin"))


class Guard:
    """Refuses oversized bodies up front and adds the security headers every response carries.

    Plain ASGI rather than `@app.middleware`: that wrapper runs each request in an extra task and
    re-streams the response, a cost every request of a busy dashboard paid.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS:
                    headers.setdefault(name, value)
            await send(message)

        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            response = problems.problem(413, "Request too large", f"bodies are limited to {MAX_BODY} bytes",
                                        "too-large", Request(scope))
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


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
    app.add_middleware(Guard)
    return app

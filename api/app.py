"""The FastAPI application: routers, problem details, security headers."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import problems
from api.context import ApiContext
from api.estate_paths import EstatePaths
from api.ratelimit import RateLimiter
from api.routes import (
    alarms,
    approvals,
    audit,
    auth,
    exceptions,
    handovers,
    health,
    live,
    overview,
    people,
    plans,
    readings,
    reports,
    site,
    tasks,
    users,
    web,
)

MAX_BODY = 12 * 1024 * 1024  # bytes of a multipart upload (the file plus its form fields)
MAX_JSON_BODY = 1024 * 1024  # bytes of any other body: JSON and forms are small
_SECURITY_HEADERS = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                     ("Referrer-Policy", "same-origin"))


class BodyTooLarge(HTTPException):
    """A request body passed its limit while it was being read (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"bodies of this kind are limited to {limit} bytes")


def body_limit(headers: Headers) -> int:
    """How many bytes a request's body may have: uploads (multipart) more, everything else little."""
    kind = headers.get("content-type", "")
    return MAX_BODY if kind.startswith("multipart/form-data") else MAX_JSON_BODY


class Guard:
    """Bounds request bodies and adds the security headers every response carries.

    A body is bounded while it is read, whether its length is declared or it comes chunked: a
    declared length over the limit is refused before anything is read, and a body that grows past
    the limit stops being read at that point (413), before any authentication or parsing work.

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

        headers = Headers(scope=scope)
        limit = body_limit(headers)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            response = problems.problem(413, "Request too large", f"bodies of this kind are limited to "
                                        f"{limit} bytes", "too-large", Request(scope))
            await response(scope, receive, send_with_headers)
            return
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # FastAPI re-raises an HTTPException met while reading the body
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, bounded_receive, send_with_headers)


def create_app(ctx: ApiContext) -> FastAPI:
    """An app serving `ctx`."""
    # /docs is served by the web routes from vendored Swagger UI files (FastAPI's own page loads them
    # from a CDN: blank offline and refused by the strict Content-Security-Policy).
    app = FastAPI(title="PumpWatch", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Pump-room monitoring and maintenance: readings, alarms, tasks.")
    app.state.ctx = ctx
    app.state.login_limiter = RateLimiter(ctx.clock)
    problems.install(app)
    for module in (auth, site, readings, live, overview, alarms, tasks, approvals, plans, users, people,
                   reports, exceptions, handovers, audit, health, web):
        app.include_router(module.router, responses=problems.PROBLEM_RESPONSES)
    app.add_middleware(Guard)
    app.add_middleware(EstatePaths, openapi=app.openapi)
    return app

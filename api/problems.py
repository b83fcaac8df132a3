"""Errors as RFC 9457 problem details: `application/problem+json` with type, title, status, detail."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from maintenance.errors import (
    Conflict,
    Forbidden,
    IllegalTransition,
    InvalidCredentials,
    InvalidInput,
    NotFound,
    ServiceError,
    SignInThrottled,
)

PROBLEM = "application/problem+json"


class Problem(BaseModel):
    """An RFC 9457 problem: what went wrong, for people (title, detail) and programs (type, status)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


# Every route may answer with these: each listed in the OpenAPI document as problem+json.
PROBLEM_STATUSES = {
    400: "Bad request", 401: "Not signed in, or the token is no longer valid",
    403: "Signed in, but not allowed this", 404: "No such thing (or not within the caller's scope)",
    409: "The thing's state does not allow this now", 413: "The request body is too large",
    422: "The request does not validate", 429: "Too many attempts; see Retry-After",
    500: "Server error",
}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {PROBLEM: {"schema": Problem.model_json_schema()}}}
    for status, text in PROBLEM_STATUSES.items()}
_STATUS: list[tuple[type[ServiceError], int, str]] = [
    (NotFound, 404, "not-found"),
    (Forbidden, 403, "forbidden"),
    (IllegalTransition, 409, "illegal-transition"),
    (Conflict, 409, "conflict"),
    (InvalidInput, 422, "invalid-input"),
    (SignInThrottled, 429, "sign-in-throttled"),
    (InvalidCredentials, 401, "invalid-credentials"),
]


def problem(status: int, title: str, detail: str, kind: str, request: Request | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """A problem-details response."""
    body: dict[str, Any] = {"type": f"https://pumpwatch.dev/problems/{kind}", "title": title,
                            "status": status, "detail": detail}
    if request is not None:
        body["instance"] = request.url.path
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    for cls, status, kind in _STATUS:
        if isinstance(exc, cls):
            extra: dict[str, Any] = {}
            if isinstance(exc, IllegalTransition):
                extra = {"current": exc.current, "attempted": exc.attempted}
            headers = None
            if isinstance(exc, SignInThrottled):
                wait = max(1, math.ceil((exc.until - datetime.now(UTC)).total_seconds()))
                headers = {"Retry-After": str(wait)}
            return problem(status, kind.replace("-", " ").capitalize(), str(exc), kind, request,
                           headers=headers, **extra)
    return problem(400, "Bad request", str(exc), "bad-request", request)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in exc.errors()]
    return problem(422, "Request does not validate", "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)[:2000], "validation",
        request, errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else None
    return problem(exc.status_code, str(exc.detail) if exc.status_code < 500 else "Server error",
                   str(exc.detail), f"http-{exc.status_code}", request, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers on an app."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

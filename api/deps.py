"""Request dependencies: the context, the signed-in user (bearer token or session cookie), roles."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from api.context import REQUEST_SCOPE, ApiContext
from maintenance.errors import Forbidden, NotFound
from maintenance.models import User
from maintenance.scope import ORGANISATION, Scope
from maintenance.vocab import Role, TokenKind

SESSION_COOKIE = "pumpwatch_session"
CSRF_COOKIE = "pumpwatch_csrf"
CSRF_HEADER = "X-CSRF-Token"
_SAFE = {"GET", "HEAD", "OPTIONS"}


def get_context(request: Request) -> ApiContext:
    """The app's context."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_context)]


async def current_user(request: Request, ctx: Ctx) -> User:
    """The user behind the bearer token, or behind the session cookie (with CSRF check on writes).

    A token verified in the last few seconds is answered from memory on the event loop; otherwise
    the database is asked from a worker thread.
    """
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
        user = (ctx.auth.cached_user(token, TokenKind.BEARER)
                or await asyncio.to_thread(ctx.auth.resolve_token, token, TokenKind.BEARER))
        if user is None:
            raise _unauthorized("the token is unknown, expired or revoked")
        return user
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        user = (ctx.auth.cached_user(session, TokenKind.SESSION)
                or await asyncio.to_thread(ctx.auth.resolve_token, session, TokenKind.SESSION))
        if user is None:
            raise _unauthorized("the session has ended; sign in again")
        if request.method not in _SAFE:
            csrf = request.headers.get(CSRF_HEADER, "")
            if not csrf or not await asyncio.to_thread(ctx.auth.check_csrf, session, csrf):
                raise HTTPException(403, f"a write with a session cookie needs the {CSRF_HEADER} header")
        return user
    raise _unauthorized("sign in first")


async def scoped_user(request: Request, ctx: Ctx) -> User:
    """The signed-in user, with the request's scope set to theirs (see `api.context.REQUEST_SCOPE`)."""
    user = await current_user(request, ctx)
    REQUEST_SCOPE.set(ORGANISATION if user.estates is None else await asyncio.to_thread(ctx.auth.scope, user))
    return user


CurrentUser = Annotated[User, Depends(scoped_user)]


async def current_scope(user: CurrentUser) -> Scope:
    """The estates the signed-in user's work covers (see `maintenance.scope`)."""
    del user  # signed in: the request's scope is set
    return REQUEST_SCOPE.get()


CallerScope = Annotated[Scope, Depends(current_scope)]


def _record_id(request: Request, name: str) -> int | None:
    value = request.path_params.get(name)
    return int(value) if isinstance(value, str) and value.isdigit() else None


ScopeCheck = Callable[[Request, ApiContext, Scope], None]


def record_in_scope(param: str, what: str, estate_of: Callable[[ApiContext, int], str]) -> ScopeCheck:
    """A router dependency: the record whose id is the path's `param` is in the caller's scope.

    Else NotFound (404) with the same words as for an id that does not exist.
    """

    def check(request: Request, ctx: Ctx, scope: CallerScope) -> None:
        record_id = _record_id(request, param)
        if record_id is not None and not scope.whole and not scope.covers(estate_of(ctx, record_id)):
            raise NotFound(what, record_id)

    return check


def _exception_estate(ctx: ApiContext, record_id: int) -> str:
    assert ctx.exceptions is not None
    return ctx.exceptions.get(record_id).estate


def _handover_estate(ctx: ApiContext, record_id: int) -> str:
    assert ctx.handovers is not None
    return ctx.handovers.get(record_id).estate


def _request_estate(kind: str) -> Callable[[ApiContext, int], str]:
    def estate_of(ctx: ApiContext, record_id: int) -> str:
        assert ctx.approvals is not None
        return ctx.approvals.estate_of(kind, record_id)
    return estate_of


task_in_scope = record_in_scope("task_id", "task", lambda ctx, i: ctx.tasks.get(i).estate)
alarm_in_scope = record_in_scope("alarm_id", "alarm", lambda ctx, i: ctx.alarms.get(i).estate)
exception_in_scope = record_in_scope("exception_id", "exception", _exception_estate)
handover_in_scope = record_in_scope("handover_id", "handover", _handover_estate)
access_in_scope = record_in_scope("request_id", "access request", _request_estate("access"))
change_in_scope = record_in_scope("request_id", "change request", _request_estate("change"))


def place_in_scope(ctx: ApiContext, scope: Scope, estate: str | None, named: bool) -> str | None:
    """The estate a list is narrowed to.

    `estate` (or the only one) when it or a room is `named`; else the caller's one estate when their scope
    is one; else None (every estate: the route filters the rows by scope).
    """
    if estate is not None or named:
        return ctx.estate(estate)
    mine = scope.narrow(ctx.portfolio.estates)
    return mine[0] if not scope.whole and len(mine) == 1 else None


def require(*roles: Role) -> Callable[[ApiContext, User], User]:
    """A dependency that lets through users holding (or deputising for) one of `roles`."""

    def check(ctx: Ctx, user: CurrentUser) -> User:
        if not any(ctx.auth.has_role(user, role) for role in roles):
            raise Forbidden(f"needs the role {' or '.join(r.value for r in roles)}")
        return user

    return check


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})

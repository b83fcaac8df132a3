"""Request dependencies: the context, the signed-in user (bearer token or session cookie), roles."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from api.context import ApiContext
from maintenance.errors import Forbidden
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


CurrentUser = Annotated[User, Depends(current_user)]


async def current_scope(ctx: Ctx, user: CurrentUser) -> Scope:
    """The estates the signed-in user's work covers (see `maintenance.scope`)."""
    del ctx, user
    return ORGANISATION


CallerScope = Annotated[Scope, Depends(current_scope)]


def require(*roles: Role) -> Callable[[ApiContext, User], User]:
    """A dependency that lets through users holding (or deputising for) one of `roles`."""

    def check(ctx: Ctx, user: CurrentUser) -> User:
        if not any(ctx.auth.has_role(user, role) for role in roles):
            raise Forbidden(f"needs the role {' or '.join(r.value for r in roles)}")
        return user

    return check


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})

"""Sign-in: OAuth2 password flow for API clients, session cookie (with CSRF token) for the web UI."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import CSRF_COOKIE, SESSION_COOKIE, Ctx, CurrentUser
from api.schemas import LoginIn, SessionOut, TokenOut, UserPublic
from maintenance.models import User
from maintenance.vocab import TokenKind

router = APIRouter(prefix="/api/auth", tags=["auth"])
BEARER_TTL = timedelta(hours=12)
SESSION_TTL = timedelta(hours=12)


def _address(request: Request) -> str:
    """The client's address: the peer, or what a configured proxy says (`PUMPWATCH_API__TRUSTED_PROXIES`)."""
    return request.client.host if request.client else "unknown"


def _limit(request: Request, ctx: Ctx) -> None:
    wait = request.app.state.login_limiter.allow(_address(request))
    if wait is not None:
        raise HTTPException(429, "too many sign-in attempts; wait and try again",
                            headers={"Retry-After": str(math.ceil(wait))})


def _login(ctx: Ctx, request: Request, username: str, password: str) -> User:
    # InvalidCredentials -> 401 for a wrong password and an unknown name alike; SignInThrottled -> 429
    return ctx.auth.authenticate(username, password, _address(request))


@router.post("/token", response_model=TokenOut, dependencies=[Depends(_limit)])
def token(ctx: Ctx, request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenOut:
    """OAuth2 password flow: a bearer token for API clients."""
    user = _login(ctx, request, form.username, form.password)
    issued = ctx.auth.issue_token(user, TokenKind.BEARER, BEARER_TTL)
    return TokenOut(access_token=issued.token, expires_at=issued.expires_at)


@router.post("/login", response_model=SessionOut, dependencies=[Depends(_limit)])
def login(ctx: Ctx, request: Request, body: LoginIn, response: Response) -> SessionOut:
    """A browser session: HttpOnly session cookie plus a CSRF token for writes."""
    user = _login(ctx, request, body.username, body.password)
    issued = ctx.auth.issue_token(user, TokenKind.SESSION, SESSION_TTL)
    assert issued.csrf_token is not None
    age = int(SESSION_TTL.total_seconds())
    response.set_cookie(SESSION_COOKIE, issued.token, max_age=age, httponly=True, samesite="strict",
                        secure=ctx.secure_cookies, path="/")
    response.set_cookie(CSRF_COOKIE, issued.csrf_token, max_age=age, httponly=False, samesite="strict",
                        secure=ctx.secure_cookies, path="/")
    return SessionOut(csrf_token=issued.csrf_token, expires_at=issued.expires_at,
                      user=UserPublic.model_validate(user))


@router.post("/logout", status_code=204)
def logout(ctx: Ctx, request: Request, response: Response, _user: CurrentUser) -> None:
    """End this session or revoke this bearer token."""
    header = request.headers.get("Authorization", "")
    token_value = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(
        SESSION_COOKIE, "")
    ctx.auth.revoke(token_value)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    """Who is signed in."""
    return UserPublic.model_validate(user)

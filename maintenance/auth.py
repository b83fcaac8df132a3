"""Users, passwords (argon2), sign-in throttling, opaque API/session tokens, deputies and role checks."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from maintenance import audit, roles
from maintenance.errors import (
    Conflict,
    Forbidden,
    InvalidCredentials,
    InvalidInput,
    NotFound,
    SignInThrottled,
)
from maintenance.models import ApiToken, Deputy, User, utc_from_epoch
from maintenance.scope import ORGANISATION, Scope
from maintenance.signin_models import SignInFailures
from maintenance.token_cache import TokenCache, VerifiedToken
from maintenance.vocab import Role, TokenKind
from pumpwatch.clock import Clock

MIN_PASSWORD_LENGTH = 8
_TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How sign-in failures slow down one account name from one address (never the account for all).

    The first `free_failures` wrong passwords cost nothing; each one after that makes that name from
    that address wait `first_delay`, then twice as long, ... up to `max_delay`. Another address is not
    slowed down, so nobody can lock a colleague out by typing wrong passwords in their name. A right
    password from the address clears its record; records older than `keep` are forgotten.
    """

    free_failures: int = 5
    first_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(minutes=15)
    keep: timedelta = timedelta(days=30)

    def delay(self, failures: int) -> timedelta:
        """How long a pair with `failures` failures waits before its next attempt."""
        over = failures - self.free_failures - 1
        if over < 0:
            return timedelta(0)
        grown: timedelta = self.first_delay * (2 ** min(over, 30))
        return min(self.max_delay, grown)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token in plaintext: shown to its owner once, stored only as a hash."""

    token_id: int
    token: str
    kind: TokenKind
    expires_at: datetime
    csrf_token: str | None = None  # sessions only: the web UI echoes it in a header on writes


def token_hash(token: str) -> str:
    """Return the SHA-256 (hex) under which a token is stored; tokens are random, so no salt is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    """Accounts and credentials; every change is audited, secrets never leave as anything but hashes."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Clock,
                 hasher: PasswordHasher | None = None, throttle: ThrottlePolicy = ThrottlePolicy(),
                 tokens: TokenCache | None = None) -> None:
        self._sessions = session_factory
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        self.throttle = throttle
        self.tokens = tokens or TokenCache()
        # Verified against for unknown users, so a login takes as long whether or not the name exists.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))

    def now(self) -> datetime:
        """Return the injected clock's time as an aware UTC datetime."""
        return utc_from_epoch(self._clock.now())

    # -- passwords ---------------------------------------------------------------------------------
    def hash_password(self, password: str) -> str:
        """Return an argon2 hash of `password`; InvalidInput if it is too short."""
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidInput(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
        return self._hasher.hash(password)

    def verify_password(self, password_hash: str, password: str) -> bool:
        """Whether `password` matches `password_hash`; a malformed hash never matches."""
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    # -- users -------------------------------------------------------------------------------------
    def create_user(self, username: str, password: str, roles: Iterable[str] = (),
                    display_name: str | None = None, actor: User | None = None,
                    estates: Iterable[str] | None = None) -> User:
        """Create an active user; `actor` None is the system (bootstrap), else it must be an admin.

        `estates`: the estates the roles are held for; None, the whole organisation.
        """
        username = username.strip()
        if not username:
            raise InvalidInput("username must not be empty")
        role_values = _roles_or_invalid(roles)
        password_hash = self.hash_password(password)
        now = self.now()
        try:
            with self._sessions.begin() as session:
                self._require_admin(session, actor, now, "creating a user")
                user = User(username=username, display_name=display_name or username,
                            password_hash=password_hash, roles=role_values, active=True, failed_logins=0,
                            created_at=now, estates=_estates_or_invalid(estates))
                session.add(user)
                session.flush()
                audit.record(session, audit.actor_id(actor), "user", user.id, "created", None,
                             audit.snapshot(user), now)
        except IntegrityError as err:
            raise Conflict(f"username {username!r} is taken") from err
        return user

    def get_user(self, user_id: int) -> User:
        """Return the user with `user_id`; NotFound otherwise."""
        with self._sessions() as session:
            return _get_user(session, user_id)

    def get_by_username(self, username: str) -> User | None:
        """Return the user called `username`, if any."""
        with self._sessions() as session:
            return session.scalar(select(User).where(User.username == username.strip()))

    def list_users(self) -> list[User]:
        """Return every user, by username."""
        with self._sessions() as session:
            return list(session.scalars(select(User).order_by(User.username)))

    def set_password(self, user_id: int, password: str, actor: User) -> None:
        """Change a password (the user themself, or an admin) and revoke the user's tokens."""
        password_hash = self.hash_password(password)
        now = self.now()
        with self._sessions.begin() as session:
            if actor.id != user_id:
                self._require_admin(session, actor, now, "changing another user's password")
            user = _get_user(session, user_id, for_update=True)
            user.password_hash = password_hash
            user.failed_logins = 0
            user.locked_until = None
            revoked = _revoke_all(session, user.id, now)
            audit.record(session, audit.actor_id(actor), "user", user.id, "password_changed", None,
                         {"tokens_revoked": revoked}, now)
        self.tokens.clear()  # after the commit, so no lookup can cache the state before it

    def set_roles(self, user_id: int, roles: Iterable[str], actor: User | None) -> User:
        """Replace a user's roles (admin or system)."""
        role_values = _roles_or_invalid(roles)
        return self._update_user(user_id, actor, "roles_changed", "changing roles", roles=role_values)

    def set_estates(self, user_id: int, estates: Iterable[str] | None, actor: User | None) -> User:
        """Hold a user's roles for these estates, or (None) for the whole organisation (admin or system)."""
        return self._update_user(user_id, actor, "estates_changed", "changing a user's estates",
                                 estates=_estates_or_invalid(estates))

    def scope(self, user: User, now: datetime | None = None) -> Scope:
        """The estates `user` works in at `now`: their own, and those of everyone they deputise for."""
        own = Scope(None if user.estates is None else frozenset(user.estates))
        if own.whole:
            return own
        when = now or self.now()
        with self._sessions() as session:
            principals = session.scalars(
                select(User).join(Deputy, Deputy.principal_id == User.id)
                .where(Deputy.deputy_id == user.id, Deputy.valid_from <= when,
                       or_(Deputy.valid_until.is_(None), Deputy.valid_until > when), User.active.is_(True)))
            estates = set(own.estates or ())
            for principal in principals:
                if principal.estates is None:
                    return ORGANISATION
                estates.update(principal.estates)
        return Scope(frozenset(estates))

    def set_active(self, user_id: int, active: bool, actor: User | None) -> User:
        """Activate or deactivate a user (admin or system); deactivating revokes the user's tokens."""
        action = "activated" if active else "deactivated"
        return self._update_user(user_id, actor, action, "activating users", active=active)

    def unlock(self, user_id: int, actor: User | None) -> User:
        """Clear the user's failed sign-ins from every address, so no delay is left (admin or system)."""
        user = self._update_user(user_id, actor, "unlocked", "unlocking users", failed_logins=0,
                                 locked_until=None)
        with self._sessions.begin() as session:
            for row in session.scalars(select(SignInFailures).where(SignInFailures.account == user.username)):
                session.delete(row)
        return user

    def _update_user(self, user_id: int, actor: User | None, action: str, doing: str,
                     **values: object) -> User:
        now = self.now()
        try:
            with self._sessions.begin() as session:
                self._require_admin(session, actor, now, doing)
                user = _get_user(session, user_id, for_update=True)
                before = audit.snapshot(user)
                for name, value in values.items():
                    setattr(user, name, value)
                if not user.active:
                    _revoke_all(session, user.id, now)
                audit.record_change(session, audit.actor_id(actor), "user", user.id, action, before,
                                    audit.snapshot(user), now)
                return user
        finally:
            self.tokens.clear()  # cached owners carry roles and the active flag

    def _require_admin(self, session: Session, actor: User | None, now: datetime, doing: str) -> None:
        if actor is not None:
            roles.require_any_role(session, _get_user(session, actor.id), [Role.ADMIN], now, doing)

    # -- login -------------------------------------------------------------------------------------
    def authenticate(self, username: str, password: str, address: str = "unknown") -> User:
        """Return the user for a correct password; InvalidCredentials or SignInThrottled otherwise.

        The same answers for names that exist and names that do not: a wrong password and an unknown
        name are both InvalidCredentials, and both are throttled per (name, address).
        """
        now = self.now()
        account = username.strip()[:128]
        address = address[:64]
        error: InvalidCredentials | SignInThrottled | None = None
        with self._sessions.begin() as session:
            record = session.get(SignInFailures, (account, address), with_for_update=True)
            if record is not None and record.blocked_until is not None and record.blocked_until > now:
                raise SignInThrottled(record.blocked_until)  # nothing checked, nothing counted
            user = session.scalar(select(User).where(User.username == account).with_for_update())
            if user is None or not user.active:
                self.verify_password(self._dummy_hash, password)
            elif self.verify_password(user.password_hash, password):
                before = audit.snapshot(user)
                user.failed_logins = 0
                if self._hasher.check_needs_rehash(user.password_hash):
                    user.password_hash = self._hasher.hash(password)
                if record is not None:
                    session.delete(record)
                audit.record_change(session, str(user.id), "user", user.id, "login", before,
                                    audit.snapshot(user), now)
                return user
            record = self._count_failure(session, record, account, address, now)
            error = InvalidCredentials("wrong username or password")
            if user is not None and user.active:
                before = audit.snapshot(user)
                user.failed_logins += 1
                audit.record_change(session, str(user.id), "user", user.id, "login_failed", before,
                                    audit.snapshot(user) | {"address": address}, now)
        # Raised after the commit: the failure count must survive the error.
        raise error

    def _count_failure(self, session: Session, record: SignInFailures | None, account: str, address: str,
                       now: datetime) -> SignInFailures:
        if record is None:
            record = SignInFailures(account=account, address=address, failures=0, first_failed_at=now,
                                    last_failed_at=now)
            session.add(record)
        record.failures += 1
        record.last_failed_at = now
        wait = self.throttle.delay(record.failures)
        record.blocked_until = now + wait if wait > timedelta(0) else None
        return record

    def sign_in_failures(self, actor: User, limit: int = 200) -> list[SignInFailures]:
        """The most recent failed sign-ins by name and address (admins)."""
        now = self.now()
        with self._sessions() as session:
            roles.require_any_role(session, _get_user(session, actor.id), [Role.ADMIN], now,
                                   "reading failed sign-ins")
            query = select(SignInFailures).order_by(SignInFailures.last_failed_at.desc()).limit(limit)
            return list(session.scalars(query))

    def forget_old_failures(self) -> int:
        """Drop failure records older than the policy keeps them; returns how many."""
        cutoff = self.now() - self.throttle.keep
        with self._sessions.begin() as session:
            rows = session.scalars(select(SignInFailures).where(SignInFailures.last_failed_at < cutoff)).all()
            for row in rows:
                session.delete(row)
            return len(rows)

    # -- tokens ------------------------------------------------------------------------------------
    def issue_token(self, user: User, kind: TokenKind = TokenKind.BEARER,
                    ttl: timedelta = timedelta(hours=12)) -> IssuedToken:
        """Issue a token for an active user; the plaintext is returned here once and never stored."""
        if ttl <= timedelta(0):
            raise InvalidInput("a token's lifetime must be positive")
        kind = TokenKind(kind)
        now = self.now()
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        csrf = secrets.token_urlsafe(_TOKEN_BYTES) if kind is TokenKind.SESSION else None
        with self._sessions.begin() as session:
            owner = _get_user(session, user.id)
            if not owner.active:
                raise Forbidden("an inactive user gets no token")
            row = ApiToken(token_hash=token_hash(token), user_id=owner.id, kind=kind.value,
                           csrf_hash=None if csrf is None else token_hash(csrf), created_at=now,
                           expires_at=now + ttl)
            session.add(row)
            session.flush()
            audit.record(session, str(owner.id), "api_token", row.id, "issued", None, audit.snapshot(row),
                         now)
            return IssuedToken(token_id=row.id, token=token, kind=kind, expires_at=row.expires_at,
                               csrf_token=csrf)

    def _verified(self, token: str) -> VerifiedToken | None:
        """The live token (not expired, not revoked, owner active): from the cache, else the database."""
        digest = token_hash(token)
        now = self._clock.now()
        now_utc = utc_from_epoch(now)
        cached = self.tokens.get(digest, now, now_utc)
        if cached is not None:
            return cached
        generation = self.tokens.generation
        with self._sessions() as session:
            found = session.execute(select(ApiToken, User).join(User, User.id == ApiToken.user_id)
                                    .where(ApiToken.token_hash == digest)).first()
        if found is None:
            return None
        row, user = found
        if row.revoked_at is not None or row.expires_at <= now_utc or not user.active:
            return None
        entry = VerifiedToken(user, row.kind, row.csrf_hash, row.expires_at, now)
        self.tokens.put(digest, entry, generation)
        return entry

    def cached_user(self, token: str, kind: TokenKind) -> User | None:
        """The owner of a token of `kind` verified within the cache lifetime; never asks the database."""
        now = self._clock.now()
        cached = self.tokens.get(token_hash(token), now, utc_from_epoch(now))
        return cached.user if cached is not None and cached.kind == kind.value else None

    def resolve_token(self, token: str, kind: TokenKind | None = None) -> User | None:
        """Return the owner of a live token (not expired, not revoked, owner active), else None."""
        live = self._verified(token)
        if live is None or (kind is not None and live.kind != kind.value):
            return None
        return live.user

    def check_csrf(self, session_token: str, csrf_token: str) -> bool:
        """Whether `csrf_token` belongs to the live session `session_token` (constant-time compare)."""
        live = self._verified(session_token)
        if live is None or live.csrf_hash is None:
            return False
        return hmac.compare_digest(live.csrf_hash, token_hash(csrf_token))

    def revoke(self, token: str) -> bool:
        """Revoke one token (logout); False if it was unknown or already revoked."""
        now = self.now()
        with self._sessions.begin() as session:
            row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token))
                                 .with_for_update())
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = now
            audit.record(session, str(row.user_id), "api_token", row.id, "revoked", None,
                         {"revoked_at": now}, now)
        self.tokens.clear()
        return True

    def revoke_all(self, user: User, actor: User | None = None) -> int:
        """Revoke every live token of `user` (by themself, an admin or the system); returns how many."""
        now = self.now()
        with self._sessions.begin() as session:
            if actor is not None and actor.id != user.id:
                self._require_admin(session, actor, now, "revoking another user's tokens")
            count = _revoke_all(session, user.id, now)
            if count:
                audit.record(session, audit.actor_id(actor or user), "user", user.id, "tokens_revoked", None,
                             {"count": count}, now)
        self.tokens.clear()
        return count

    # -- deputies and roles ------------------------------------------------------------------------
    def add_deputy(self, principal_id: int, deputy_id: int, role: Role, valid_from: datetime,
                   valid_until: datetime | None, actor: User | None) -> Deputy:
        """Let `deputy_id` act for `principal_id` in `role` for a period (set by principal or admin)."""
        role = Role(role)
        if role not in roles.DEPUTISABLE_ROLES:
            raise InvalidInput(f"nobody can deputise as {role.value}")
        if principal_id == deputy_id:
            raise InvalidInput("a user cannot be their own deputy")
        if valid_until is not None and valid_until <= valid_from:
            raise InvalidInput("a deputy period must end after it starts")
        now = self.now()
        with self._sessions.begin() as session:
            if actor is not None and actor.id != principal_id:
                self._require_admin(session, actor, now, "naming a deputy for someone else")
            principal = _get_user(session, principal_id)
            deputy = _get_user(session, deputy_id)
            if role.value not in principal.roles:
                raise InvalidInput(f"{principal.username} does not hold the role {role.value}")
            row = Deputy(deputy_id=deputy.id, principal_id=principal.id, role=role.value,
                         valid_from=valid_from, valid_until=valid_until, created_at=now)
            session.add(row)
            session.flush()
            audit.record(session, audit.actor_id(actor), "deputy", row.id, "created", None,
                         audit.snapshot(row), now)
            return row

    def end_deputy(self, deputy_row_id: int, actor: User | None) -> Deputy:
        """End a deputy period now (the principal, an admin or system)."""
        now = self.now()
        with self._sessions.begin() as session:
            row = session.get(Deputy, deputy_row_id, with_for_update=True)
            if row is None:
                raise NotFound("deputy", deputy_row_id)
            if actor is not None and actor.id != row.principal_id:
                self._require_admin(session, actor, now, "ending someone else's deputy")
            before = audit.snapshot(row)
            if row.valid_until is None or row.valid_until > now:
                row.valid_until = max(now, row.valid_from)
            audit.record_change(session, audit.actor_id(actor), "deputy", row.id, "ended", before,
                                audit.snapshot(row), now)
            return row

    def list_deputies(self, involving: int | None = None) -> list[Deputy]:
        """Deputy periods, newest first: all of them, or those where `involving` is deputy or principal."""
        query = select(Deputy).order_by(Deputy.valid_from.desc(), Deputy.id.desc()).limit(500)
        if involving is not None:
            query = query.where((Deputy.deputy_id == involving) | (Deputy.principal_id == involving))
        with self._sessions() as session:
            return list(session.scalars(query))

    def has_role(self, user: User, role: Role, now: datetime | None = None) -> bool:
        """Whether `user` may act in `role` at `now` (default: the clock): holds it or deputises for it."""
        with self._sessions() as session:
            current = session.get(User, user.id)
            return current is not None and roles.has_role(session, current, Role(role), now or self.now())


def _estates_or_invalid(values: Iterable[str] | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        raise InvalidInput("estates must be a list of estate ids, or null for the whole organisation")
    estates = sorted({value.strip() for value in values})
    if not estates or any(not e or len(e) > 64 for e in estates):
        raise InvalidInput("estates must name at least one estate id of 1 to 64 characters, "
                           "or be null for the whole organisation")
    return estates


def _roles_or_invalid(values: Iterable[str]) -> list[str]:
    if isinstance(values, str):
        raise InvalidInput("roles must be a list of role names")
    return roles.parse_roles(values)


def _get_user(session: Session, user_id: int, for_update: bool = False) -> User:
    user = session.get(User, user_id, with_for_update=for_update)
    if user is None:
        raise NotFound("user", user_id)
    return user


def _revoke_all(session: Session, user_id: int, now: datetime) -> int:
    rows = session.scalars(select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None),
                                                  ApiToken.expires_at > now))
    count = 0
    for row in rows:
        row.revoked_at = now
        count += 1
    return count

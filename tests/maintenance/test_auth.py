"""Accounts: argon2 passwords, sign-in throttling, expiring and revocable tokens, deputies, audit rows."""

from __future__ import annotations

import contextlib
import hashlib
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from maintenance import audit
from maintenance.auth import AuthService, ThrottlePolicy, token_hash
from maintenance.errors import (
    Conflict,
    Forbidden,
    InvalidCredentials,
    InvalidInput,
    NotFound,
    SignInThrottled,
)
from maintenance.models import ApiToken, AuditLog, User
from maintenance.token_cache import TokenCache, VerifiedToken
from maintenance.vocab import Role, TokenKind
from pumpwatch.clock import FakeClock
from tests.support.state import FAST_HASHER, PASSWORD, People, advance, clock_time


def _audit_actions(sessions: sessionmaker[Session], entity: str, entity_id: object) -> list[str]:
    with sessions() as session:
        return [row.action for row in audit.history(session, entity, entity_id)]


def test_create_user_stores_an_argon2_hash_and_audits_without_it(
        auth: AuthService, sessions: sessionmaker[Session]) -> None:
    user = auth.create_user("  alice ", PASSWORD, roles=["technician", "operator"], display_name="Alice")
    assert user.username == "alice"
    assert user.roles == ["operator", "technician"]
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert auth.verify_password(user.password_hash, PASSWORD)
    assert not auth.verify_password(user.password_hash, PASSWORD + "x")
    assert not auth.verify_password("not-a-hash", PASSWORD)
    with sessions() as session:
        row = session.scalars(select(AuditLog).where(AuditLog.entity == "user")).one()
    assert (row.actor, row.action, row.entity_id) == ("system", "created", str(user.id))
    assert row.after is not None
    assert row.after["username"] == "alice"
    assert "password_hash" not in row.after


def test_create_user_rejects_duplicates_unknown_roles_and_short_passwords(auth: AuthService) -> None:
    auth.create_user("bob", PASSWORD)
    with pytest.raises(Conflict):
        auth.create_user("bob", PASSWORD)
    with pytest.raises(InvalidInput, match="unknown role"):
        auth.create_user("carl", PASSWORD, roles=["janitor"])
    with pytest.raises(InvalidInput, match="at least 8"):
        auth.create_user("dave", "short")
    with pytest.raises(InvalidInput):
        auth.create_user("   ", PASSWORD)
    assert auth.get_by_username("carl") is None


def test_only_admins_manage_users(auth: AuthService, people: People) -> None:
    with pytest.raises(Forbidden):
        auth.create_user("eve", PASSWORD, actor=people.supervisor)
    with pytest.raises(Forbidden):
        auth.set_roles(people.technician.id, ["admin"], actor=people.technician)
    created = auth.create_user("eve", PASSWORD, roles=["operator"], actor=people.admin)
    changed = auth.set_roles(created.id, ["operator", "technician"], actor=people.admin)
    assert changed.roles == ["operator", "technician"]
    with pytest.raises(NotFound):
        auth.set_roles(10_000, ["operator"], actor=people.admin)


def test_authenticate_accepts_the_right_password_only(auth: AuthService, people: People) -> None:
    assert auth.authenticate("tom", PASSWORD).id == people.technician.id
    with pytest.raises(InvalidCredentials):
        auth.authenticate("tom", "wrong password")
    with pytest.raises(InvalidCredentials):
        auth.authenticate("nobody", PASSWORD)
    auth.set_active(people.technician.id, False, actor=people.admin)
    with pytest.raises(InvalidCredentials):
        auth.authenticate("tom", PASSWORD)


HOME, ELSEWHERE = "10.0.0.5", "10.0.0.9"


def test_failures_from_one_address_slow_that_address_down_with_growing_delays(
        auth: AuthService, clock: FakeClock, people: People, sessions: sessionmaker[Session]) -> None:
    for attempt in range(1, 7):  # the first five cost nothing but the count; the sixth starts a delay
        with pytest.raises(InvalidCredentials):
            auth.authenticate("tom", "wrong password", ELSEWHERE)
        assert auth.get_user(people.technician.id).failed_logins == attempt
    with pytest.raises(SignInThrottled) as waiting:  # while the delay runs, not even the right password
        auth.authenticate("tom", PASSWORD, ELSEWHERE)
    assert waiting.value.until == clock_time(clock) + timedelta(seconds=1)
    delays = []
    for _ in range(4):
        advance(clock, 3600)
        with pytest.raises(InvalidCredentials):
            auth.authenticate("tom", "wrong password", ELSEWHERE)
        with pytest.raises(SignInThrottled) as waiting:
            auth.authenticate("tom", "wrong password", ELSEWHERE)
        delays.append((waiting.value.until - clock_time(clock)).total_seconds())
    assert delays == [2.0, 4.0, 8.0, 16.0]
    actions = _audit_actions(sessions, "user", people.technician.id)
    assert actions == ["created"] + ["login_failed"] * 10


def test_the_owner_signs_in_from_another_address_while_an_attacker_is_slowed_down(
        auth: AuthService, people: People) -> None:
    for _ in range(20):
        with contextlib.suppress(InvalidCredentials, SignInThrottled):
            auth.authenticate("tom", "guess", ELSEWHERE)
    assert auth.authenticate("tom", PASSWORD, HOME).id == people.technician.id  # no lockout weapon
    with pytest.raises(SignInThrottled):
        auth.authenticate("tom", PASSWORD, ELSEWHERE)


def test_the_delay_stops_growing_at_its_cap(sessions: sessionmaker[Session], clock: FakeClock,
                                            people: People) -> None:
    strict = AuthService(sessions, clock, hasher=FAST_HASHER,
                         throttle=ThrottlePolicy(free_failures=0, first_delay=timedelta(minutes=1),
                                                 max_delay=timedelta(minutes=5)))
    seen = []
    for _ in range(6):
        with pytest.raises(InvalidCredentials):
            strict.authenticate("tom", "wrong password", ELSEWHERE)
        with pytest.raises(SignInThrottled) as waiting:
            strict.authenticate("tom", "wrong password", ELSEWHERE)
        seen.append((waiting.value.until - clock_time(clock)).total_seconds())
        advance(clock, 3600)
    assert seen == [60.0, 120.0, 240.0, 300.0, 300.0, 300.0]


def test_unknown_names_are_answered_and_throttled_exactly_like_known_ones(
        auth: AuthService, clock: FakeClock, people: People) -> None:
    answers: dict[str, list[str]] = {}
    for name in ("tom", "nobody-here"):
        answers[name] = []
        for _ in range(7):
            try:
                auth.authenticate(name, "wrong password", ELSEWHERE)
            except (InvalidCredentials, SignInThrottled) as err:
                answers[name].append(f"{type(err).__name__}: {err}")
    assert answers["tom"] == answers["nobody-here"]
    assert answers["tom"][-1].startswith("SignInThrottled")


def test_a_success_clears_the_address_record_and_admins_see_and_clear_failures(
        auth: AuthService, clock: FakeClock, people: People) -> None:
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            auth.authenticate("tom", "wrong password", HOME)
    auth.authenticate("tom", PASSWORD, HOME)
    for _ in range(6):
        with contextlib.suppress(InvalidCredentials):
            auth.authenticate("sue", "wrong password", ELSEWHERE)
    rows = auth.sign_in_failures(people.admin)
    assert [(r.account, r.address, r.failures) for r in rows] == [("sue", ELSEWHERE, 6)]
    with pytest.raises(Forbidden):
        auth.sign_in_failures(people.supervisor)
    auth.unlock(people.supervisor2.id, actor=people.admin)
    assert auth.sign_in_failures(people.admin) == []
    assert auth.authenticate("sue", PASSWORD, ELSEWHERE).id == people.supervisor2.id


def test_old_failure_records_are_forgotten(auth: AuthService, clock: FakeClock, people: People) -> None:
    with pytest.raises(InvalidCredentials):
        auth.authenticate("someone", "x", ELSEWHERE)
    advance(clock, 29 * 86400)
    assert auth.forget_old_failures() == 0
    advance(clock, 2 * 86400)
    assert auth.forget_old_failures() == 1
    assert auth.sign_in_failures(people.admin) == []


def test_login_rehashes_a_password_hashed_with_weaker_parameters(
        sessions: sessionmaker[Session], clock: FakeClock, people: People) -> None:
    old_hash = people.technician.password_hash
    production = AuthService(sessions, clock, hasher=PasswordHasher())
    user = production.authenticate("tom", PASSWORD)
    assert user.password_hash != old_hash
    assert not PasswordHasher().check_needs_rehash(user.password_hash)
    assert production.authenticate("tom", PASSWORD).id == user.id


def test_tokens_are_stored_only_as_hashes(auth: AuthService, people: People,
                                          sessions: sessionmaker[Session]) -> None:
    issued = auth.issue_token(people.technician, TokenKind.BEARER, timedelta(hours=1))
    assert len(issued.token) >= 40
    with sessions() as session:
        row = session.get(ApiToken, issued.token_id)
        assert row is not None
        assert row.token_hash == hashlib.sha256(issued.token.encode()).hexdigest() == token_hash(issued.token)
        stored = [str(v) for v in (row.token_hash, row.csrf_hash, row.kind, row.user_id)]
        trail = session.scalars(select(AuditLog).where(AuditLog.entity == "api_token")).one()
    assert all(issued.token not in value for value in stored)
    assert trail.action == "issued"
    assert trail.after is not None
    assert "token_hash" not in trail.after
    assert issued.token not in str(trail.after)


def test_a_token_resolves_until_it_expires(auth: AuthService, clock: FakeClock, people: People) -> None:
    issued = auth.issue_token(people.technician, ttl=timedelta(hours=1))
    assert issued.expires_at == clock_time(clock) + timedelta(hours=1)
    resolved = auth.resolve_token(issued.token)
    assert resolved is not None
    assert resolved.id == people.technician.id
    assert auth.resolve_token(issued.token + "x") is None
    assert auth.resolve_token("") is None
    advance(clock, 3599)
    assert auth.resolve_token(issued.token) is not None
    advance(clock, 1)
    assert auth.resolve_token(issued.token) is None


def test_token_kind_can_be_required(auth: AuthService, people: People) -> None:
    bearer = auth.issue_token(people.technician, TokenKind.BEARER)
    assert auth.resolve_token(bearer.token, TokenKind.BEARER) is not None
    assert auth.resolve_token(bearer.token, TokenKind.SESSION) is None
    with pytest.raises(InvalidInput):
        auth.issue_token(people.technician, ttl=timedelta(0))


def test_sessions_carry_a_csrf_token(auth: AuthService, people: People) -> None:
    session_token = auth.issue_token(people.operator, TokenKind.SESSION, timedelta(hours=8))
    bearer = auth.issue_token(people.operator, TokenKind.BEARER)
    assert session_token.csrf_token is not None
    assert bearer.csrf_token is None
    assert auth.check_csrf(session_token.token, session_token.csrf_token)
    assert not auth.check_csrf(session_token.token, "forged")
    assert not auth.check_csrf(bearer.token, session_token.csrf_token)
    auth.revoke(session_token.token)
    assert not auth.check_csrf(session_token.token, session_token.csrf_token)


def test_revoke_and_revoke_all(auth: AuthService, people: People, sessions: sessionmaker[Session]) -> None:
    first = auth.issue_token(people.technician)
    second = auth.issue_token(people.technician, TokenKind.SESSION)
    third = auth.issue_token(people.technician)
    other = auth.issue_token(people.operator)
    assert auth.revoke(first.token)
    assert not auth.revoke(first.token)
    assert not auth.revoke("unknown")
    assert auth.resolve_token(first.token) is None
    assert auth.resolve_token(second.token) is not None
    assert auth.revoke_all(people.technician) == 2
    assert auth.resolve_token(second.token) is None
    assert auth.resolve_token(third.token) is None
    assert auth.resolve_token(other.token) is not None
    assert auth.revoke_all(people.technician) == 0
    with pytest.raises(Forbidden):
        auth.revoke_all(people.operator, actor=people.technician)
    assert _audit_actions(sessions, "api_token", first.token_id) == ["issued", "revoked"]
    assert _audit_actions(sessions, "user", people.technician.id) == ["created", "tokens_revoked"]


def test_deactivating_a_user_or_changing_the_password_kills_their_tokens(auth: AuthService,
                                                                          people: People) -> None:
    token = auth.issue_token(people.technician)
    auth.set_password(people.technician.id, "a new long password", actor=people.technician)
    assert auth.resolve_token(token.token) is None
    assert auth.authenticate("tom", "a new long password").id == people.technician.id
    token = auth.issue_token(people.technician)
    auth.set_active(people.technician.id, False, actor=people.admin)
    assert auth.resolve_token(token.token) is None
    with pytest.raises(Forbidden):
        auth.issue_token(people.technician)
    with pytest.raises(Forbidden):
        auth.set_password(people.operator.id, "another password", actor=people.technician)


def test_a_token_used_a_moment_ago_stops_working_at_once_when_revoked_here(
        auth: AuthService, clock: FakeClock, people: People, sessions: sessionmaker[Session]) -> None:
    def in_use() -> list[str]:  # each token resolved once, so the next answers may come from memory
        tokens = {name: auth.issue_token(user) for name, user in
                  (("tom", people.technician), ("olivia", people.operator), ("sam", people.supervisor))}
        for issued in tokens.values():
            assert auth.resolve_token(issued.token) is not None
        return [issued.token for issued in tokens.values()]

    tom, olivia, sam = in_use()
    assert auth.cached_user(tom, TokenKind.BEARER) is not None
    with sessions.begin() as session:  # behind the service's back: what the cache saves is this lookup
        session.execute(update(ApiToken).where(ApiToken.token_hash.in_([token_hash(tom), token_hash(sam)]))
                        .values(revoked_at=clock_time(clock)))
    assert auth.resolve_token(tom) is not None
    assert auth.revoke(olivia)  # through the service: every answer kept in this process is dropped
    assert auth.resolve_token(tom) is None
    assert auth.resolve_token(olivia) is None
    assert auth.resolve_token(sam) is None

    for revoke in (lambda: auth.revoke_all(people.technician),
                   lambda: auth.set_password(people.technician.id, "a brand new password", people.technician),
                   lambda: auth.set_active(people.technician.id, False, actor=people.admin)):
        auth.set_active(people.technician.id, True, actor=people.admin)
        tom, *_others = in_use()
        revoke()
        assert auth.resolve_token(tom) is None
        assert auth.cached_user(tom, TokenKind.BEARER) is None


def test_a_role_change_is_seen_by_the_next_request(auth: AuthService, people: People) -> None:
    issued = auth.issue_token(people.technician)
    assert (auth.resolve_token(issued.token) or people.admin).roles == ["technician"]
    auth.set_roles(people.technician.id, ["technician", "supervisor"], actor=people.admin)
    resolved = auth.resolve_token(issued.token)
    assert resolved is not None
    assert resolved.roles == ["supervisor", "technician"]


def test_a_revocation_through_another_api_process_holds_here_within_the_cache_lifetime(
        sessions: sessionmaker[Session], clock: FakeClock, people: People) -> None:
    here = AuthService(sessions, clock, hasher=FAST_HASHER, tokens=TokenCache(ttl=5.0))
    replica = AuthService(sessions, clock, hasher=FAST_HASHER)
    uncached = AuthService(sessions, clock, hasher=FAST_HASHER, tokens=TokenCache(ttl=0))
    issued = here.issue_token(people.operator)
    assert here.resolve_token(issued.token) is not None
    advance(clock, 2)
    assert replica.revoke(issued.token)
    assert uncached.resolve_token(issued.token) is None
    assert here.resolve_token(issued.token) is not None  # verified 2 s ago, by a process that did not revoke
    advance(clock, 3)
    assert here.resolve_token(issued.token) is None
    assert here.cached_user(issued.token, TokenKind.BEARER) is None


def test_a_lookup_that_raced_a_revocation_is_not_kept(people: People) -> None:
    cache = TokenCache(ttl=5.0)
    entry = VerifiedToken(people.operator, TokenKind.BEARER.value, None,
                          clock_time(FakeClock()) + timedelta(hours=1), FakeClock().now())
    generation = cache.generation  # taken before the database was read ...
    cache.clear()  # ... and a revocation committed meanwhile
    cache.put("digest", entry, generation)
    assert cache.get("digest", FakeClock().now(), clock_time(FakeClock())) is None
    cache.put("digest", entry, cache.generation)
    assert cache.get("digest", FakeClock().now(), clock_time(FakeClock())) == entry


def test_has_role_counts_own_roles(auth: AuthService, people: People) -> None:
    assert auth.has_role(people.supervisor, Role.SUPERVISOR)
    assert not auth.has_role(people.supervisor, Role.DIRECTOR)
    assert not auth.has_role(people.technician, Role.SUPERVISOR)
    auth.set_active(people.supervisor.id, False, actor=None)
    assert not auth.has_role(people.supervisor, Role.SUPERVISOR)


def test_a_deputy_holds_the_role_only_during_the_period(
        auth: AuthService, clock: FakeClock, people: People, sessions: sessionmaker[Session]) -> None:
    now = clock_time(clock)
    row = auth.add_deputy(people.supervisor.id, people.technician.id, Role.SUPERVISOR,
                          valid_from=now + timedelta(days=1), valid_until=now + timedelta(days=3),
                          actor=people.supervisor)
    assert not auth.has_role(people.technician, Role.SUPERVISOR)
    assert auth.has_role(people.technician, Role.SUPERVISOR, now + timedelta(days=1))
    assert auth.has_role(people.technician, Role.SUPERVISOR, now + timedelta(days=3) - timedelta(seconds=1))
    assert not auth.has_role(people.technician, Role.SUPERVISOR, now + timedelta(days=3))
    assert not auth.has_role(people.technician, Role.DIRECTOR, now + timedelta(days=2))
    assert not auth.has_role(people.operator, Role.SUPERVISOR, now + timedelta(days=2))
    advance(clock, 2 * 86400)
    assert auth.has_role(people.technician, Role.SUPERVISOR)
    ended = auth.end_deputy(row.id, actor=people.admin)
    assert ended.valid_until == clock_time(clock)
    assert not auth.has_role(people.technician, Role.SUPERVISOR)
    assert _audit_actions(sessions, "deputy", row.id) == ["created", "ended"]


def test_a_deputy_stops_counting_when_the_principal_loses_the_role(auth: AuthService, clock: FakeClock,
                                                                   people: People) -> None:
    auth.add_deputy(people.director.id, people.supervisor.id, Role.DIRECTOR, clock_time(clock), None,
                    actor=people.admin)
    assert auth.has_role(people.supervisor, Role.DIRECTOR)
    auth.set_roles(people.director.id, ["supervisor"], actor=people.admin)
    assert not auth.has_role(people.supervisor, Role.DIRECTOR)
    auth.set_roles(people.director.id, ["director"], actor=people.admin)
    assert auth.has_role(people.supervisor, Role.DIRECTOR)
    auth.set_active(people.director.id, False, actor=people.admin)
    assert not auth.has_role(people.supervisor, Role.DIRECTOR)


def test_deputies_are_checked(auth: AuthService, clock: FakeClock, people: People) -> None:
    now = clock_time(clock)
    with pytest.raises(InvalidInput, match="admin"):
        auth.add_deputy(people.admin.id, people.technician.id, Role.ADMIN, now, None, actor=None)
    with pytest.raises(InvalidInput, match="does not hold"):
        auth.add_deputy(people.operator.id, people.technician.id, Role.SUPERVISOR, now, None, actor=None)
    with pytest.raises(InvalidInput, match="own deputy"):
        auth.add_deputy(people.supervisor.id, people.supervisor.id, Role.SUPERVISOR, now, None, actor=None)
    with pytest.raises(InvalidInput, match="end after"):
        auth.add_deputy(people.supervisor.id, people.technician.id, Role.SUPERVISOR, now, now, actor=None)
    with pytest.raises(Forbidden):  # a technician cannot make themself a supervisor's deputy
        auth.add_deputy(people.supervisor.id, people.technician.id, Role.SUPERVISOR, now, None,
                        actor=people.technician)


def test_get_user_and_lookup(auth: AuthService, people: People) -> None:
    assert auth.get_user(people.admin.id).username == "ada"
    found = auth.get_by_username("ada")
    assert found is not None
    assert found.id == people.admin.id
    with pytest.raises(NotFound):
        auth.get_user(123_456)
    assert isinstance(found, User)

"""Role checks: a user holds a role itself, or acts for an absent holder as an active deputy."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from maintenance.errors import Forbidden, InvalidInput
from maintenance.models import Deputy, User
from maintenance.vocab import Role

# Deputies stand in for approvers and workers; nobody can be made an administrator by deputising.
DEPUTISABLE_ROLES = frozenset({Role.OPERATOR, Role.TECHNICIAN, Role.SUPERVISOR, Role.DIRECTOR})


def parse_roles(roles: Iterable[str]) -> list[str]:
    """Return the roles as sorted, distinct `Role` values; InvalidInput names an unknown one."""
    parsed: set[str] = set()
    for role in roles:
        try:
            parsed.add(Role(role).value)
        except ValueError as err:
            known = ", ".join(r.value for r in Role)
            raise InvalidInput(f"unknown role {role!r}; roles are {known}") from err
    return sorted(parsed)


def holds_role(user: User, role: Role) -> bool:
    """Whether an active user holds `role` itself (deputies not considered)."""
    return user.active and role.value in user.roles


def is_deputy_for(session: Session, user: User, role: Role, now: datetime) -> bool:
    """Whether `user` is, at `now`, an active deputy of an active user who holds `role`."""
    if not user.active or role not in DEPUTISABLE_ROLES:
        return False
    principals = session.scalars(
        select(User).join(Deputy, Deputy.principal_id == User.id)
        .where(Deputy.deputy_id == user.id, Deputy.role == role.value, Deputy.valid_from <= now,
               or_(Deputy.valid_until.is_(None), Deputy.valid_until > now), User.active.is_(True)))
    return any(role.value in principal.roles for principal in principals)


def has_role(session: Session, user: User, role: Role, now: datetime) -> bool:
    """Whether `user` may act in `role` at `now`: holds it, or deputises for someone who does."""
    return holds_role(user, role) or is_deputy_for(session, user, role, now)


def has_any_role(session: Session, user: User, roles: Iterable[Role], now: datetime) -> bool:
    """Whether `user` may act in at least one of `roles` at `now`."""
    return any(has_role(session, user, role, now) for role in roles)


def require_any_role(session: Session, user: User, roles: Iterable[Role], now: datetime, doing: str) -> None:
    """Raise Forbidden unless `user` may act in one of `roles`; `doing` says what was refused."""
    wanted = tuple(roles)
    if not has_any_role(session, user, wanted, now):
        raise Forbidden(f"{doing} needs the role {' or '.join(r.value for r in wanted)}")

"""Separation of duties for decisions: who may approve a request, in person or as someone's deputy.

The rules, shared by access requests, change requests and approved exceptions:

- no one approves what they requested, not even through a deputyship;
- a deputy decides in the name of the principal they stand in for, so a deputy cannot approve a request
  their principal filed (nor give a second approval in the name of someone who gave the first);
- the decision needs the role itself (held, or deputised for an active holder): being an administrator
  does not stand in for the supervisor.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from maintenance.errors import Forbidden
from maintenance.models import Deputy, User
from maintenance.roles import DEPUTISABLE_ROLES, holds_role
from maintenance.vocab import Role


def principals(session: Session, user: User, role: Role, now: datetime) -> list[User]:
    """The active holders of `role` for whom `user` is, at `now`, an active deputy in that role."""
    if not user.active or role not in DEPUTISABLE_ROLES:
        return []
    found = session.scalars(
        select(User).join(Deputy, Deputy.principal_id == User.id)
        .where(Deputy.deputy_id == user.id, Deputy.role == role.value, Deputy.valid_from <= now,
               or_(Deputy.valid_until.is_(None), Deputy.valid_until > now), User.active.is_(True))
        .order_by(User.id))
    return [p for p in found if role.value in p.roles]


def not_the_requester(actor: User, requested_by: int, what: str) -> None:
    """Forbidden when `actor` filed the request: no one approves what they asked for."""
    if actor.id == requested_by:
        raise Forbidden(f"no one approves {what} they filed themselves; another person must decide")


def may_decide_as(session: Session, actor: User, role: Role, now: datetime,
                  excluded: Collection[int | None]) -> bool | str:
    """Whether `actor` may decide in `role` on a request whose parties are `excluded`.

    True in person, or as the deputy of a principal not in `excluded` (the requester, an earlier
    approver); a reason (str) when only a deputyship for an excluded principal stands; False when the
    role is not there at all.
    """
    if actor.id in excluded:
        return "the requester and earlier approvers do not decide this request"
    if holds_role(actor, role):
        return True
    stand_ins = principals(session, actor, role, now)
    if any(p.id not in excluded for p in stand_ins):
        return True
    if stand_ins:
        names = ", ".join(p.display_name for p in stand_ins)
        return (f"a deputy decides in the name of the person they stand in for ({names}), who filed or "
                "already approved this request")
    return False


def require_decider(session: Session, actor: User, role: Role, now: datetime,
                    excluded: Collection[int | None], doing: str) -> None:
    """Forbidden unless `actor` may decide in `role` for a request whose parties are `excluded`."""
    verdict = may_decide_as(session, actor, role, now, excluded)
    if verdict is True:
        return
    if isinstance(verdict, str):
        raise Forbidden(f"{doing}: {verdict}")
    raise Forbidden(f"{doing} needs the {role.value} (held, or as the deputy of one); "
                    "no other role stands in for it")

"""Estates in the maintenance state: which estate a request means, and records from before estates.

Every alarm, task, approval, exception, handover and monthly report names its estate (the `estate`
column, revision 0008). A service asked about a room or an asset without an estate resolves it within
the only estate of a single-estate deployment and refuses (InvalidInput, 422) when there are several.

Records from before revision 0008 have no estate (''). `adopt_unassigned` runs right after the
migration, before any role starts: with one estate configured they become that estate's (task keys of
plan occurrences get its prefix, `<estate>:<plan>:<occurrence>`); with several, the estate
`PUMPWATCH_ADOPT_ESTATE` names; with several and none named, the start is refused
(`UnassignedRecords`), since guessing would file one estate's records under another. The step is audited
and changes nothing once no record is left without an estate.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, Table, func, literal, select, update
from sqlalchemy.orm import Session

from maintenance import audit
from maintenance.approval_models import AccessRequest, ChangeRequest
from maintenance.db import session_factory
from maintenance.errors import InvalidInput
from maintenance.exception_models import SwitchException
from maintenance.handover_models import Handover
from maintenance.models import Alarm, Base, Task
from maintenance.report_models import ReportSnapshot
from pumpwatch.portfolio import EstateRequired, Portfolio, UnknownEstate

RECORDS: tuple[type[Base], ...] = (Alarm, Task, AccessRequest, ChangeRequest, SwitchException, Handover,
                                   ReportSnapshot)
PLAN_KEY_SEPARATOR = ":"


class UnassignedRecords(RuntimeError):
    """Records from before estates, several estates configured, and none named to take them."""


def estate_of(portfolio: Portfolio, estate: str | None) -> str:
    """The estate a request is about: the one given, or the only one; InvalidInput otherwise."""
    try:
        return portfolio.resolve(estate)
    except (EstateRequired, UnknownEstate) as err:
        raise InvalidInput(str(err)) from None


def estate_key(estate: str, key: str) -> str:
    """A task key within an estate: `<estate>:<key>` (plan occurrences, corrective work)."""
    return f"{estate}{PLAN_KEY_SEPARATOR}{key}" if estate else key


def unassigned(session: Session) -> dict[str, int]:
    """How many records of each table have no estate yet."""
    found: dict[str, int] = {}
    for model in RECORDS:
        table = _table(model)
        count = session.scalar(select(func.count()).select_from(table).where(table.c.estate == "")) or 0
        if count:
            found[table.name] = count
    return found


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def adopt_unassigned(engine: Engine, estates: Sequence[str], chosen: str | None,
                     now: datetime) -> dict[str, int]:
    """Give every record without an estate its estate (see the module); how many of each table were given.

    `UnassignedRecords` when there are some, several estates, and `chosen` is None or not one of them.
    """
    sessions = session_factory(engine)
    with sessions.begin() as session:
        counts = unassigned(session)
        if not counts:
            return {}
        if chosen is None and len(estates) == 1:
            chosen = estates[0]
        if chosen is None or chosen not in estates:
            what = ", ".join(f"{n} {table}" for table, n in counts.items())
            named = (f"PUMPWATCH_ADOPT_ESTATE={chosen!r} is not an estate of the deployment"
                     if chosen is not None else "no estate is named for them")
            raise UnassignedRecords(
                f"the state database holds records from before estates ({what}) and the deployment has "
                f"{len(estates)} estates ({', '.join(estates)}); {named}: set PUMPWATCH_ADOPT_ESTATE to the "
                "estate they belong to")
        session.execute(update(Task).where(Task.estate == "", Task.plan_key.is_not(None))
                        .values(plan_key=literal(chosen + PLAN_KEY_SEPARATOR) + Task.plan_key))
        for model in RECORDS:
            table = _table(model)
            session.execute(update(table).where(table.c.estate == "").values(estate=chosen))
        audit.record(session, audit.SYSTEM, "estate", chosen, "adopted", None, dict(counts), now)
        return counts

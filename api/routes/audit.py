"""The audit trail, read-only (supervisor, director, admin): who changed what, when, before and after.

Filters: `user` (a user id, or `system`), `entity` (task, alarm, access_request, change_request,
exception, handover, user, ...), `entity_id`, `estate` (the rows of that estate's records), `asset`
(rows of that asset's tasks, alarms, attachments, change requests and exceptions) and the period
`since` (inclusive) to `until` (exclusive).
`format=csv` exports every matching row, oldest first, with cells that look like formulas made inert.
A reader scoped to estates sees the rows of those estates' records only (see `AuditFilter.within`).
There is deliberately no route that writes: the trail is written only by the services, in the
transaction of the change each row describes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, Response
from pydantic import AwareDatetime

from api.deps import CallerScope, Ctx, require
from api.schemas import MAX_ID, AuditEntryPublic, Page
from maintenance.audit import AuditFilter, AuditTrail
from maintenance.models import User
from maintenance.vocab import Role

router = APIRouter(prefix="/api/audit", tags=["audit"])
Reader = Annotated[User, Depends(require(Role.SUPERVISOR, Role.DIRECTOR, Role.ADMIN))]
AuditPage = Page[AuditEntryPublic]
CSV_NAME = "pumpwatch-audit.csv"


def _trail(ctx: Ctx) -> AuditTrail:
    assert ctx.audit is not None
    return ctx.audit


@router.get("", response_model=AuditPage)
def read(ctx: Ctx, _reader: Reader, scope: CallerScope,
         actor: Annotated[str | None, Query(alias="user", pattern=r"^(\d{1,10}|system)$")] = None,
         entity: Annotated[str | None, Query(max_length=32)] = None,
         entity_id: Annotated[str | None, Query(max_length=64)] = None,
         asset: Annotated[str | None, Query(max_length=100)] = None,
         since: AwareDatetime | None = None, until: AwareDatetime | None = None,
         estate: Annotated[str | None, Query(max_length=64)] = None,
         offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 100,
         format: Literal["json", "csv"] = "json") -> Response:
    """Audit rows, newest first, as a page (`{data, count}`), or all of them as CSV."""
    filters = AuditFilter(actor=actor, entity=entity, entity_id=entity_id, asset=asset, since=since,
                          until=until,
                          within=frozenset({ctx.estate(estate)}) if estate is not None else scope.estates)
    if format == "csv":
        return PlainTextResponse(_trail(ctx).export_csv(filters), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{CSV_NAME}"'})
    rows, total = _trail(ctx).search(filters, offset, limit)
    page = AuditPage(data=[AuditEntryPublic.model_validate(r) for r in rows], count=total)
    return Response(page.model_dump_json(), media_type="application/json")

"""The monthly maintenance report as JSON, CSV or a printable page (supervisor, director, admin)."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from api.deps import Ctx, require
from maintenance.errors import InvalidInput
from maintenance.models import User, utc_from_epoch
from maintenance.reports import Month, to_csv, to_html
from maintenance.vocab import Role

router = APIRouter(prefix="/api/reports", tags=["reports"])
Reader = Annotated[User, Depends(require(Role.SUPERVISOR, Role.DIRECTOR, Role.ADMIN))]


@router.get("/monthly/{month}", response_model=None)
def monthly(month: str, ctx: Ctx, _user: Reader,
            format: Annotated[Literal["json", "csv", "html"], Query()] = "json") -> Response:
    """The report of `YYYY-MM`; before the month ends it is marked preliminary (`final: false`)."""
    found = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if found is None or not 1 <= int(found.group(2)) <= 12:
        raise InvalidInput("month must look like 2026-11")
    period = Month(int(found.group(1)), int(found.group(2)), ZoneInfo(ctx.site.site.timezone))
    assert ctx.reports is not None
    report = ctx.reports.build(period, utc_from_epoch(ctx.clock.now()))
    if format == "csv":
        return PlainTextResponse(to_csv(report), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="pumpwatch-report-{period}.csv"'})
    if format == "html":
        return HTMLResponse(to_html(report, ctx.site.site.name.zh), headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
    return JSONResponse(report)

"""The monthly maintenance report: read it (JSON, CSV, printable page, PDF) and sign it.

Supervisors, directors and admins read it. The director (or a deputy) signs it as approver (审核), which
closes the month early; the supervisor (or a deputy) signs it as preparer (编制). A closed month's PDF is
the archived one, byte for byte (its SHA-256 in the `X-Content-SHA256` header and the ETag).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from api.deps import CallerScope, Ctx, require
from maintenance.models import User, utc_from_epoch
from maintenance.reports import MonthlyReport, to_csv, to_html
from maintenance.reports.portfolio import PortfolioReport, portfolio_csv
from maintenance.vocab import Role

router = APIRouter(prefix="/api/reports", tags=["reports"])
Reader = Annotated[User, Depends(require(Role.SUPERVISOR, Role.DIRECTOR, Role.ADMIN))]
Signer = Annotated[User, Depends(require(Role.SUPERVISOR, Role.DIRECTOR))]
Format = Literal["json", "csv", "html", "pdf"]
PortfolioFormat = Literal["json", "csv"]
MonthLabel = Annotated[str, Query(pattern=r"^\d{4}-\d{2}$", description="the month, e.g. 2026-11")]


class SignBody(BaseModel):
    """The line to sign: `approved` (审核, director) or `prepared` (编制, supervisor); else by role."""

    line: Literal["approved", "prepared"] | None = Field(None, description="approved: director; prepared: "
                                                                          "supervisor")


def _reports(ctx: Ctx) -> MonthlyReport:
    assert ctx.reports is not None, "the API context has no report service"
    return ctx.reports


@router.get("/monthly/{month}", response_model=None)
async def monthly(month: str, ctx: Ctx, _user: Reader, format: Annotated[Format, Query()] = "json",
                  edition: Annotated[int | None, Query(ge=1, le=1000)] = None,
                  estate: str | None = None) -> Response:
    """The report of an estate's `YYYY-MM`: closed (`status: closed`, with amendments) or a live preview.

    `estate` is needed when the deployment has several.
    """
    reports = _reports(ctx)
    place = ctx.estate(estate)
    period = reports.month(month, place)
    now = utc_from_epoch(ctx.clock.now())
    filename = (f"pumpwatch-report-{period}" if len(ctx.portfolio) == 1
                else f"pumpwatch-report-{place}-{period}")
    if format == "pdf":
        pdf, digest = await asyncio.to_thread(reports.pdf, period, now, edition, place)
        headers = {"Content-Disposition": f'attachment; filename="{filename}.pdf"'}
        if digest is not None:
            headers |= {"X-Content-SHA256": digest, "ETag": f'"{digest}"', "Cache-Control": "private"}
        else:
            headers["Cache-Control"] = "no-store"  # a preview changes until the month closes
        return Response(pdf, media_type="application/pdf", headers=headers)
    report = await asyncio.to_thread(reports.report, period, now, place)
    if format == "csv":
        return PlainTextResponse(to_csv(report), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{filename}.csv"'})
    if format == "html":
        return HTMLResponse(to_html(report, ctx.portfolio.estate(place).site.name.zh), headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
    return JSONResponse(report)


@router.post("/monthly/{month}/sign", response_model=None)
async def sign(month: str, ctx: Ctx, user: Signer, body: SignBody | None = None,
               estate: str | None = None) -> JSONResponse:
    """Sign the report of an estate's month that is over; the director's signature closes and archives it."""
    reports = _reports(ctx)
    place = ctx.estate(estate)
    period = reports.month(month, place)
    now = utc_from_epoch(ctx.clock.now())
    line = body.line if body is not None else None
    return JSONResponse(await asyncio.to_thread(reports.sign, period, user, now, line, place))


@router.get("/portfolio", response_model=None)
async def portfolio(ctx: Ctx, _user: Reader, scope: CallerScope, month: MonthLabel,
                    format: Annotated[PortfolioFormat, Query()] = "json") -> Response:
    """The estates of the caller's scope in `month`, best first (`maintenance.reports.portfolio`).

    Per estate: SLA attainment, repeat faults, rotation and inspection compliance, open criticals at the
    month's end (now for the current month), and the score the ranking is by. Read by those who read the
    monthly reports.
    """
    reports = _reports(ctx)
    estates = scope.narrow(ctx.portfolio.estates)
    now = utc_from_epoch(ctx.clock.now())
    report = await asyncio.to_thread(PortfolioReport(ctx.tasks.sessions, reports).report, month, estates, now)
    if format == "csv":
        return PlainTextResponse(portfolio_csv(report), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="pumpwatch-portfolio-{month}.csv"'})
    return JSONResponse(report)

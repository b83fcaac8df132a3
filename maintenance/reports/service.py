"""MonthlyReport: reports that stay final once closed, amended by what happens later, archived as PDF.

On the 1st of a month `close_due` builds the previous month's report and stores it; from the 6th (or when
the director signs) the report is closed: its figures never change again, its PDF is archived, and later
changes to its tasks are listed as amendments. A month still open (the current one, or one not yet
closed) is reported as a live preview. `close_due` runs in the maintenance state's periodic check of
every replica: each step is idempotent and safe when two replicas run it at once.

A report is one estate's month: its tasks, its time zone, its name and its rotation plan. The methods take
the estate (None: the only estate of a single-estate deployment); `close_due` builds and closes every
estate's. The report of the whole portfolio is built from these elsewhere.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer, sessionmaker

from maintenance import audit
from maintenance.errors import Conflict, Forbidden, InvalidInput, NotFound
from maintenance.estates import estate_of
from maintenance.models import User, utc_from_epoch
from maintenance.report_models import ReportAmendment, ReportSnapshot
from maintenance.reports import amendments, snapshots
from maintenance.reports.document import assemble
from maintenance.reports.figures import DEFAULT_ROTATION_PLAN, MonthFigures, month_figures
from maintenance.reports.month import Month
from maintenance.roles import has_role, holds_role
from maintenance.task_flow import SlaPolicy
from maintenance.vocab import Role
from pumpwatch.clock import Clock, SystemClock
from pumpwatch.portfolio import Portfolio, as_portfolio
from pumpwatch.site import Site, Text

log = logging.getLogger(__name__)

CATCH_UP_MONTHS = 24  # after a long outage, the missed months' reports are built too (at most this many)
DEFAULT_ZONE = "Asia/Shanghai"  # the site model's default


def to_pdf(report: dict[str, Any]) -> bytes:
    """The report as a PDF (`maintenance.reports.pdf`).

    reportlab is imported on the first PDF, not with the maintenance state: it costs about 15 MB and
    0.2 s, which the scheduler and the other roles that load this package never need.
    """
    from maintenance.reports.pdf import to_pdf as render

    return render(report)


def rotation_plan_of(site: Site | None) -> str:
    """The id of the site's duty-rotation plan (the scheduler's plan keys start with it)."""
    if site is None:
        return DEFAULT_ROTATION_PLAN
    return next((p.id for p in site.plans.effective() if p.action == "rotate"), DEFAULT_ROTATION_PLAN)


class MonthlyReport:
    """The monthly reports of each estate over the state database."""

    def __init__(self, sessions: sessionmaker[Session], sla: SlaPolicy | None = None,
                 site: Site | Portfolio | None = None, clock: Clock | None = None) -> None:
        self._sessions = sessions
        self._clock = clock or SystemClock()
        self.sla = sla or SlaPolicy()
        self.portfolio: Portfolio | None = None
        if site is not None:
            self.set_portfolio(as_portfolio(site))

    def set_portfolio(self, portfolio: Portfolio) -> None:
        """The estates as their site files now have them (a reload)."""
        self.portfolio = portfolio

    def estate(self, estate: str | None = None) -> str:
        """The estate a request means: the one given, or the only one (InvalidInput with several)."""
        if self.portfolio is None:
            return estate or ""
        return estate_of(self.portfolio, estate)

    def _site(self, estate: str) -> Site | None:
        return self.portfolio.estates.get(estate) if self.portfolio is not None else None

    @property
    def site(self) -> Site | None:
        """The only estate's site (None without a site, or with several estates)."""
        if self.portfolio is None or self.portfolio.only is None:
            return None
        return self.portfolio.first

    def zone(self, estate: str | None = None) -> ZoneInfo:
        """An estate's time zone (its months are its calendar's)."""
        site = self._site(self.estate(estate))
        return ZoneInfo(site.site.timezone if site is not None else DEFAULT_ZONE)

    @property
    def tz(self) -> ZoneInfo:
        """The time zone of the only estate."""
        return self.zone()

    def site_name(self, estate: str | None = None) -> Text:
        """An estate's name, as its report is headed."""
        site = self._site(self.estate(estate))
        return site.site.name if site is not None else Text(zh="PumpWatch", en="PumpWatch")

    def rotation_plan(self, estate: str | None = None) -> str:
        """The id of an estate's duty-rotation plan."""
        return rotation_plan_of(self._site(self.estate(estate)))

    def month(self, label: str, estate: str | None = None) -> Month:
        """The estate's month `YYYY-MM`; InvalidInput otherwise."""
        return Month.parse(label, self.zone(estate))

    # -- reading -----------------------------------------------------------------------------------
    def report(self, month: Month, now: datetime, estate: str | None = None) -> dict[str, Any]:
        """The closed report of `month` with its amendments, or a live preview while it is open."""
        if now < month.start:
            raise InvalidInput(f"{month} has not begun: there is no report yet")
        estate = self.estate(estate)
        with self._sessions.begin() as session:
            snapshot = snapshots.find(session, month, lock=True, estate=estate)
            if snapshot is not None:
                amendments.sweep(session, [snapshot], self.zone(estate), now)
            return self._document(session, month, snapshot, now, estate)

    def pdf(self, month: Month, now: datetime, edition: int | None = None,
            estate: str | None = None) -> tuple[bytes, str | None]:
        """The PDF: the archived bytes of a closed month (and their SHA-256), else a preview rendered now."""
        if now < month.start:
            raise InvalidInput(f"{month} has not begun: there is no report yet")
        estate = self.estate(estate)
        with self._sessions() as session:
            snapshot = snapshots.find(session, month, estate=estate)
            if snapshot is not None and snapshot.state == snapshots.CLOSED:
                row = snapshots.archived_pdf(session, snapshot, edition)
                if row is None:
                    raise NotFound("report archive", f"{month} edition {edition}")
                return row.content, row.sha256
        if edition is not None:
            raise NotFound("report archive", f"{month} edition {edition}")
        return to_pdf(self.report(month, now, estate)), None

    def _figures(self, session: Session, month: Month, now: datetime, estate: str) -> MonthFigures:
        return month_figures(session, month, now, self.sla.window, self.rotation_plan(estate), estate)

    def _document(self, session: Session, month: Month, snapshot: ReportSnapshot | None,
                  now: datetime, estate: str) -> dict[str, Any]:
        if snapshot is not None and snapshot.state == snapshots.CLOSED:
            figures = snapshot.figures
        else:
            figures = self._figures(session, month, now, estate).figures
        name = self.site_name(estate)
        if snapshot is None:
            return assemble(month, name, figures, None)
        return assemble(month, name, figures, snapshot, amendments.listed(session, snapshot),
                        snapshots.editions(session, snapshot))

    # -- building and closing by themselves --------------------------------------------------------
    def close_due(self, now: datetime | None = None) -> list[str]:
        """Build the reports that are ready, close the ones that are due, record amendments (idempotent).

        `now` defaults to the clock's time. Returns what it did, e.g. `["built 2026-03", "closed 2026-03"]`;
        an empty list when another replica (or an earlier call) already had.
        """
        now = now or utc_from_epoch(self._clock.now())
        done: list[str] = []
        estates = list(self.portfolio.estates) if self.portfolio is not None else [""]
        steps = {estate: self._close_due(estate, now) for estate in estates}
        for estate in self._sweep(estates, now):  # after the months just built and closed
            steps[estate].append("amended")
        for estate in estates:
            done += [f"{step} ({estate})" for step in steps[estate]] if len(estates) > 1 else steps[estate]
        return done

    def _close_due(self, estate: str, now: datetime) -> list[str]:
        zone = self._zone_of(estate)
        done = [f"built {m}" for m in self._months_to_build(now, estate, zone) if self._build(m, now, estate)]
        with self._sessions() as session:
            due = [Month.parse(label, zone) for label in session.scalars(
                select(ReportSnapshot.month).where(ReportSnapshot.state == snapshots.BUILT,
                                                   ReportSnapshot.estate == estate)
                .order_by(ReportSnapshot.month))]
        done += [f"closed {m}" for m in due if m.closes_at <= now and self._close_on_due(m, now, estate)]
        return done

    def _sweep(self, estates: list[str], now: datetime) -> set[str]:
        """Record every estate's amendments; the estates that got some.

        One pass per time zone, not per estate: the sweep reads the audit trail's task rows since the
        oldest month it covers, and read once per estate that was the API's heaviest periodic work at 200
        estates (every 30 s).
        """
        with self._sessions.begin() as session:
            every = list(session.scalars(select(ReportSnapshot).options(defer(ReportSnapshot.figures))
                                         .where(ReportSnapshot.estate.in_(estates))
                                         .order_by(ReportSnapshot.estate, ReportSnapshot.month)
                                         .with_for_update()))
            by_zone: dict[str, tuple[ZoneInfo, list[ReportSnapshot]]] = {}
            for snapshot in every:
                zone = self._zone_of(snapshot.estate)
                by_zone.setdefault(zone.key, (zone, []))[1].append(snapshot)
            added: list[int] = []
            for zone, group in by_zone.values():
                added += amendments.sweep(session, group, zone, now)
            if not added:
                return set()
            of_snapshot = {snapshot.id: snapshot.estate for snapshot in every}
            return {of_snapshot[snapshot_id] for snapshot_id in session.scalars(
                select(ReportAmendment.snapshot_id).where(ReportAmendment.id.in_(added)))}

    def _months_to_build(self, now: datetime, estate: str, zone: ZoneInfo) -> list[Month]:
        last = Month.containing(now, zone).previous()
        with self._sessions() as session:
            latest = snapshots.latest_month(session, estate)
            first = snapshots.first_record(session)
        if first is None or first >= last.end:
            return []  # nothing was recorded before that month ended: the system was not running yet
        months = [last]
        if latest is not None:
            month = last.previous()
            while str(month) > latest and len(months) < CATCH_UP_MONTHS:
                months.append(month)
                month = month.previous()
        return sorted(months, key=str)

    def _build(self, month: Month, now: datetime, estate: str) -> bool:
        """Store the month's report once; False when it already was (here or by another replica)."""
        with self._sessions() as session:
            if snapshots.find(session, month, estate=estate) is not None:
                return False
        try:
            with self._sessions.begin() as session:
                if snapshots.find(session, month, estate=estate) is not None:
                    return False
                snapshots.insert(session, month, self._figures(session, month, now, estate), now, estate)
        except IntegrityError:
            with self._sessions() as session:
                if snapshots.find(session, month, estate=estate) is None:
                    raise
            return False  # another replica built it between our check and our insert
        log.info("monthly report %s of estate %s built", month, estate)
        return True

    def _close_on_due(self, month: Month, now: datetime, estate: str) -> bool:
        with self._sessions.begin() as session:
            snapshot = snapshots.find(session, month, lock=True, estate=estate)
            if snapshot is None or snapshot.state == snapshots.CLOSED:
                return False
            self._close(session, month, snapshot, "due", audit.SYSTEM, now)
            self._archive(session, month, snapshot, "closed", now)
        log.info("monthly report %s of estate %s closed on its due date", month, estate)
        return True

    def _close(self, session: Session, month: Month, snapshot: ReportSnapshot, reason: str, actor: str,
               now: datetime) -> None:
        estate = snapshot.estate
        amendments.sweep(session, [snapshot], self._zone_of(estate), now)
        snapshots.close(session, snapshot, self._figures(session, month, now, estate), reason, actor, now)

    def _archive(self, session: Session, month: Month, snapshot: ReportSnapshot, reason: str,
                 now: datetime) -> None:
        document = self._document(session, month, snapshot, now, snapshot.estate)
        snapshots.archive(session, snapshot, to_pdf(document), reason, now)

    def _zone_of(self, estate: str) -> ZoneInfo:
        return self.zone(estate) if estate else ZoneInfo(DEFAULT_ZONE)

    # -- signing -----------------------------------------------------------------------------------
    def sign(self, month: Month, user: User, now: datetime, line: str | None = None,
             estate: str | None = None) -> dict[str, Any]:
        """Sign the month's report and return it.

        The director (or a deputy) approves it (审核), which closes it; the supervisor (or a deputy) signs
        as its preparer (编制). `line` picks `approved` or `prepared` for someone who may sign both; by
        default a director approves. One person never signs both lines.
        """
        if now < month.end:
            raise Conflict(f"{month} is not over: its report can be signed from {month.day(month.end)}")
        estate = self.estate(estate)
        self._build(month, now, estate)
        with self._sessions.begin() as session:
            actor = session.get(User, user.id)
            if actor is None or not actor.active:
                raise Forbidden("the account is unknown or inactive")
            line = self._line(session, actor, line, now)
            snapshot = snapshots.find(session, month, lock=True, estate=estate)
            if snapshot is None:  # pragma: no cover - built just above
                raise NotFound("report", str(month))
            self._check_line(snapshot, line, actor)
            role = Role.DIRECTOR if line == "approved" else Role.SUPERVISOR
            name = actor.display_name if holds_role(actor, role) else f"{actor.display_name}（代 deputy）"
            snapshots.sign(session, snapshot, line, actor.id, name, now)
            if snapshot.state == snapshots.BUILT and line == "approved":
                self._close(session, month, snapshot, "signed", str(actor.id), now)
            if snapshot.state == snapshots.CLOSED:
                self._archive(session, month, snapshot, line, now)
            return self._document(session, month, snapshot, now, estate)

    @staticmethod
    def _line(session: Session, actor: User, wanted: str | None, now: datetime) -> str:
        director = has_role(session, actor, Role.DIRECTOR, now)
        supervisor = has_role(session, actor, Role.SUPERVISOR, now)
        if wanted is None:
            if not (director or supervisor):
                raise Forbidden("signing the monthly report needs the role director (审核) or "
                                "supervisor (编制)")
            wanted = "approved" if director else "prepared"
        if wanted not in ("approved", "prepared"):
            raise InvalidInput("sign as 'approved' (director) or 'prepared' (supervisor)")
        if wanted == "approved" and not director:
            raise Forbidden("approving the monthly report (审核) needs the role director")
        if wanted == "prepared" and not supervisor:
            raise Forbidden("signing the monthly report as its preparer (编制) needs the role supervisor")
        return wanted

    @staticmethod
    def _check_line(snapshot: ReportSnapshot, line: str, actor: User) -> None:
        other = "prepared" if line == "approved" else "approved"
        if getattr(snapshot, f"{line}_at") is not None:
            raise Conflict(f"the report of {snapshot.month} is already signed on that line by "
                           f"{getattr(snapshot, f'{line}_name')}")
        if getattr(snapshot, f"{other}_by") == actor.id:
            raise Forbidden("the preparer (编制) and the approver (审核) of a report must be two people")
        if line == "prepared" and snapshot.approved_at is not None:
            raise Conflict(f"the report of {snapshot.month} is approved: no preparer signs after that")


"""The report as one document: the figures with the month, the status, signatures, amendments and archive.

JSON, CSV, the printable page and the PDF are all written from this one dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from maintenance.report_models import ReportSnapshot
from maintenance.reports.month import Month
from pumpwatch.site import Text

PREVIEW, CLOSED = "preview", "closed"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _signature(snapshot: ReportSnapshot | None, line: str) -> dict[str, Any] | None:
    if snapshot is None or getattr(snapshot, f"{line}_at") is None:
        return None
    return {"user_id": getattr(snapshot, f"{line}_by"), "name": getattr(snapshot, f"{line}_name"),
            "at": _iso(getattr(snapshot, f"{line}_at"))}


def assemble(month: Month, site: Text, figures: dict[str, Any], snapshot: ReportSnapshot | None,
             amendments: Sequence[dict[str, Any]] = (),
             archive: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The whole report: closed (the stored figures) when the snapshot is closed, else a live preview."""
    closed = snapshot is not None and snapshot.state == CLOSED
    return {
        "month": str(month),
        "site": {"zh": site.zh, "en": site.en},
        "timezone": month.tz.key,
        "status": CLOSED if closed else PREVIEW,
        "final": closed,
        "ready_from": month.end.isoformat(),
        "due_by": month.due.isoformat(),
        "built_at": _iso(snapshot.built_at) if snapshot else None,
        "closed_at": _iso(snapshot.closed_at) if snapshot else None,
        "closed_by": snapshot.closed_reason if snapshot else None,
        "signatures": {line: _signature(snapshot, line) for line in ("prepared", "approved")},
        **figures,
        "amendments": list(amendments),
        "archive": list(archive),
    }

"""Tables of the monthly reports: stored snapshots, closed months, amendments and archived PDFs."""

from __future__ import annotations

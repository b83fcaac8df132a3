"""Table of failed sign-ins: one row per (account name, client address), the throttle's memory."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from maintenance.models import Base


class SignInFailures(Base):
    """Failed sign-ins of one account name from one address, and until when that pair must wait.

    Kept for names that exist and names that do not alike, so the answers never tell them apart.
    """

    __tablename__ = "sign_in_failures"

    account: Mapped[str] = mapped_column(String(128), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    first_failed_at: Mapped[datetime]
    last_failed_at: Mapped[datetime] = mapped_column(index=True)
    blocked_until: Mapped[datetime | None]

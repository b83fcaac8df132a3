"""The state layer's tables as typed SQLAlchemy 2 ORM classes; times are timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from maintenance.vocab import AlarmState, CycleReason, Priority, TaskState, TokenKind, sql_in

JsonDict = dict[str, Any]

# The estate of a record (`pumpwatch.portfolio`: ids are unique within an estate only). Rows from before
# estates have '' until the start-up step `maintenance.estates.adopt_unassigned` gives them theirs.
ESTATE_LENGTH = 64

# Stable constraint names, so migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_from_epoch(ts: float) -> datetime:
    """Epoch seconds (a Clock's `now()`) as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every database: SQLite stores it naive in UTC, PostgreSQL as timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes (their zone is a guess); store UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Always hand back an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base: naming convention, and datetimes stored as aware UTC."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(), JsonDict: JSON(), list[str]: JSON(), list[JsonDict]: JSON()}


class User(Base):
    """A person who logs in; roles is a JSON list of `Role` values, held for `estates` (None: all)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[str]]
    # The estates the user's roles are held for; None: the whole organisation (maintenance/scope.py).
    estates: Mapped[list[str] | None] = mapped_column(JSON, nullable=True, default=None)
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Deputy(Base):
    """`deputy_id` may act for `principal_id` in `role` from `valid_from` until `valid_until` (None: open)."""

    __tablename__ = "deputies"
    __table_args__ = (CheckConstraint("deputy_id <> principal_id", name="not_self"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deputy_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20))
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime | None]
    created_at: Mapped[datetime]


class ApiToken(Base):
    """An opaque token, stored only as its SHA-256; sessions also keep their CSRF token's hash."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint(sql_in("kind", TokenKind), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    csrf_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Alarm(Base):
    """One alarm of one (estate, asset, alarm type); at most one active row per key (partial unique index)."""

    __tablename__ = "alarms"
    __table_args__ = (
        CheckConstraint(sql_in("state", AlarmState), name="state"),
        # The dedup guarantee lives in the database, so concurrent writers cannot both insert.
        Index("ux_alarms_active_key", "estate", "asset", "alarm_type", unique=True,
              sqlite_where=text("state = 'active'"), postgresql_where=text("state = 'active'")),
        Index("ix_alarms_key_ended", "estate", "asset", "alarm_type", "ended_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    estate: Mapped[str] = mapped_column(String(ESTATE_LENGTH), server_default="")
    asset: Mapped[str] = mapped_column(String(100))
    alarm_type: Mapped[str] = mapped_column(String(64))
    room: Mapped[str] = mapped_column(String(100), index=True)
    sensor: Mapped[str | None] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(10))
    peak_severity: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(10), default=AlarmState.ACTIVE.value)
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    acknowledged_at: Mapped[datetime | None]
    started_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]
    peak_value: Mapped[float | None] = mapped_column(Double)
    last_value: Mapped[float | None] = mapped_column(Double)
    message_zh: Mapped[str] = mapped_column(Text)
    message_en: Mapped[str] = mapped_column(Text)
    repeat_count: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime]


class Task(Base):
    """A piece of maintenance work and its record: report, checklist, parts, both signatures."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(sql_in("state", TaskState), name="state"),
        CheckConstraint(sql_in("priority", Priority), name="priority"),
        CheckConstraint("escalation_level BETWEEN 0 AND 3", name="escalation_level"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    estate: Mapped[str] = mapped_column(String(ESTATE_LENGTH), server_default="", index=True)
    kind: Mapped[str] = mapped_column(String(20))
    title_zh: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    asset: Mapped[str | None] = mapped_column(String(100), index=True)
    room: Mapped[str | None] = mapped_column(String(100), index=True)
    priority: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(12), index=True)
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    # Unique: an alarm has one task for its whole life (a repeat within the window reopens it).
    alarm_id: Mapped[int | None] = mapped_column(ForeignKey("alarms.id", ondelete="SET NULL"), unique=True)
    # Unique: a plan occurrence ("<estate>:<plan>:<target>@2026-01-05") becomes exactly one task, whoever
    # creates it.
    plan_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    checklist: Mapped[list[JsonDict]] = mapped_column(default=list)
    notes: Mapped[list[JsonDict]] = mapped_column(default=list)
    parts_used: Mapped[list[JsonDict]] = mapped_column(default=list)
    fault_cause: Mapped[str | None] = mapped_column(Text)
    action_taken: Mapped[str | None] = mapped_column(Text)
    parts_replaced: Mapped[str | None] = mapped_column(Text)
    remarks: Mapped[str | None] = mapped_column(Text)
    technician_signed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    technician_signed_at: Mapped[datetime | None]
    supervisor_signed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    supervisor_signed_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]  # first start in the current cycle
    repeat_count: Mapped[int] = mapped_column(default=0)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    sent_back_reason: Mapped[str | None] = mapped_column(Text)
    # The higher of the two clocks' levels: 0 none, 1 reminded, 2 supervisor, 3 director.
    escalation_level: Mapped[int] = mapped_column(default=0)
    # The fields above describe the current cycle of work (`cycle`); earlier cycles are rows of task_cycles.
    cycle: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    responded_at: Mapped[datetime | None]  # first assigned or started in the current cycle
    response_due_at: Mapped[datetime | None]
    resolution_due_at: Mapped[datetime | None]  # `due_at` is the same deadline, kept for lists and clients
    response_escalation: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    resolution_escalation: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # The scheduler created it after its time had passed (it was down): missed, not skipped.
    late: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    assignees: Mapped[list[TaskAssignee]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="TaskAssignee.user_id")
    # Loaded on demand: lists never need them; the task service loads them for one task.
    cycles: Mapped[list[TaskCycle]] = relationship(
        cascade="all, delete-orphan", order_by="TaskCycle.number", back_populates="task")

    @property
    def assignee_ids(self) -> list[int]:
        """The ids of the users the task is assigned to."""
        return [a.user_id for a in self.assignees]


class TaskAssignee(Base):
    """A user a task is assigned to (a link table, so lists filter by assignee on every database)."""

    __tablename__ = "task_assignees"

    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True,
                                         index=True)
    assigned_at: Mapped[datetime]


class TaskCycle(Base):
    """One cycle of work on a task, kept for good once it has ended.

    It is opened (the task created, reopened by a repeat alarm, or sent back), responded to, started,
    checked, the parts recorded, the completion report signed by the technician, and it ends verified,
    sent back, cancelled, or superseded when a repeat alarm reopens the finished task.

    The task row holds the current cycle's fields too; the task service writes both in one transaction.
    """

    __tablename__ = "task_cycles"
    __table_args__ = (
        UniqueConstraint("task_id", "number"),
        CheckConstraint(sql_in("reason", CycleReason), name="reason"),
        CheckConstraint("response_escalation BETWEEN 0 AND 3", name="response_escalation"),
        CheckConstraint("resolution_escalation BETWEEN 0 AND 3", name="resolution_escalation"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    number: Mapped[int]  # 1, 2, ... within the task
    reason: Mapped[str] = mapped_column(String(10))
    opened_at: Mapped[datetime] = mapped_column(index=True)
    opened_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))  # None: system
    response_due_at: Mapped[datetime | None]
    resolution_due_at: Mapped[datetime | None]
    responded_at: Mapped[datetime | None]
    responded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    response_escalation: Mapped[int] = mapped_column(default=0)
    resolution_escalation: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None]
    started_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    checklist: Mapped[list[JsonDict]] = mapped_column(default=list)
    parts_used: Mapped[list[JsonDict]] = mapped_column(default=list)
    notes: Mapped[list[JsonDict]] = mapped_column(default=list)  # the notes written during this cycle
    # Who worked in this cycle (started, recorded a check or a part, signed the report): never its reviewer.
    workers: Mapped[list[int]] = mapped_column(JSON, default=list)
    fault_cause: Mapped[str | None] = mapped_column(Text)
    action_taken: Mapped[str | None] = mapped_column(Text)
    parts_replaced: Mapped[str | None] = mapped_column(Text)
    remarks: Mapped[str | None] = mapped_column(Text)
    technician_signed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    technician_signed_at: Mapped[datetime | None] = mapped_column(index=True)
    supervisor_signed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    supervisor_signed_at: Mapped[datetime | None] = mapped_column(index=True)
    sent_back_at: Mapped[datetime | None]
    sent_back_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    sent_back_reason: Mapped[str | None] = mapped_column(Text)
    cancelled_at: Mapped[datetime | None]
    cancelled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None]  # verified, sent back, cancelled, or superseded by a reopening

    task: Mapped[Task] = relationship(back_populates="cycles")


class Attachment(Base):
    """A file attached to a task (photo, meter reading, a checklist item's document) at `stored_path`."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    stored_path: Mapped[str] = mapped_column(String(500))
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    uploaded_at: Mapped[datetime]
    checklist_key: Mapped[str | None] = mapped_column(String(64))  # the checklist item it documents
    cycle: Mapped[int] = mapped_column(default=1, server_default=text("1"))  # the task's cycle at upload


class AuditLog(Base):
    """Who changed what and when; `before`/`after` hold the changed fields (whole entity on create)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ts: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64))  # a user id, or "system"
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    before: Mapped[JsonDict | None]
    after: Mapped[JsonDict | None]

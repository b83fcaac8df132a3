"""Request and response bodies (Create / Update / Public per resource; lists as {data, count})."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from maintenance.task_flow import CheckResult
from maintenance.vocab import Priority, Role, TaskKind

T = TypeVar("T")
MAX_ID = 2_147_483_647  # row ids fit a 32-bit integer on every database
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
Name = Field(min_length=1, max_length=200)
LongText = Field(min_length=1, max_length=4000)


class Page(BaseModel, Generic[T]):
    """A page of a list and the total count."""

    data: list[T]
    count: int


class Body(BaseModel):
    """Request bodies refuse unknown fields."""

    model_config = ConfigDict(extra="forbid")


class Bilingual(BaseModel):
    """A text in Simplified Chinese and English."""

    zh: str
    en: str


class UserPublic(BaseModel):
    """A user as others see it."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    display_name: str
    roles: list[str]
    active: bool
    locked_until: datetime | None = None


class PersonPublic(BaseModel):
    """A colleague as every signed-in user may see them."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    display_name: str
    roles: list[str]


class UserCreate(Body):
    """A new user (admin)."""

    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@\-]+$")
    display_name: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=10, max_length=256)
    roles: list[Role] = Field(default_factory=list)


class UserUpdate(Body):
    """Changes to a user (admin); omitted fields stay."""

    roles: list[Role] | None = None
    active: bool | None = None
    password: str | None = Field(None, min_length=10, max_length=256)
    unlock: bool = False


class DeputyCreate(Body):
    """A deputy acting for a principal in a role for a period (admin)."""

    principal_id: DbId
    deputy_id: DbId
    role: Role
    valid_from: datetime
    valid_until: datetime | None = None


class TokenOut(BaseModel):
    """An OAuth2 bearer token."""

    access_token: str
    token_type: str = "bearer"
    expires_at: datetime


class LoginIn(Body):
    """Credentials for a browser session."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class SessionOut(BaseModel):
    """A browser session: the CSRF token to send with writes, and who signed in."""

    csrf_token: str
    expires_at: datetime
    user: UserPublic


class ReadingOut(BaseModel):
    """A sensor's value with its place and unit."""

    sensor: str
    ts: float
    value: float
    quality: str
    state: str | None
    unit: str
    kind: str
    equipment: str
    stale: bool


class HistoryPointOut(BaseModel):
    """One step of a downsampled history."""

    ts: float
    mean: float
    min: float
    max: float
    count: int


class AlarmPublic(BaseModel):
    """An alarm with its lifecycle."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    asset: str
    alarm_type: str
    room: str
    sensor: str | None
    severity: str
    peak_severity: str
    state: str
    acknowledged_by: int | None
    acknowledged_at: datetime | None
    started_at: datetime
    ended_at: datetime | None
    peak_value: float | None
    last_value: float | None
    message_zh: str
    message_en: str
    repeat_count: int


class TaskPublic(BaseModel):
    """A task (work order) with its record."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: str
    title_zh: str
    title_en: str
    description: str | None
    asset: str | None
    room: str | None
    priority: str
    state: str
    due_at: datetime | None
    alarm_id: int | None
    plan_key: str | None
    assignee_ids: list[int]
    checklist: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    parts_used: list[dict[str, Any]]
    fault_cause: str | None
    action_taken: str | None
    parts_replaced: str | None
    remarks: str | None
    technician_signed_by: int | None
    technician_signed_at: datetime | None
    supervisor_signed_by: int | None
    supervisor_signed_at: datetime | None
    repeat_count: int
    cancel_reason: str | None
    sent_back_reason: str | None
    escalation_level: int
    created_by: int | None
    created_at: datetime
    updated_at: datetime


class TaskCreate(Body):
    """A task by hand: a fault report (anyone) or other kinds (supervisor)."""

    title: Bilingual
    kind: TaskKind = TaskKind.FAULT
    priority: Priority = Priority.NORMAL
    asset: str | None = Field(None, max_length=100)
    room: str | None = Field(None, max_length=100)
    description: str | None = Field(None, max_length=4000)
    due_at: datetime | None = None


class AssignIn(Body):
    """Who does the task."""

    assignees: list[DbId] = Field(min_length=1, max_length=20)


class CompleteIn(Body):
    """The completion report (signed by the technician who sends it)."""

    fault_cause: str = LongText
    action_taken: str = LongText
    parts_replaced: str | None = Field(None, max_length=4000)
    remarks: str | None = Field(None, max_length=4000)


class ReasonIn(Body):
    """Why a task is sent back or cancelled."""

    reason: str = LongText


class CheckIn(Body):
    """The result of one checklist item."""

    result: CheckResult
    value: float | None = Field(None, allow_inf_nan=False)
    note: str | None = Field(None, max_length=2000)


class NoteIn(Body):
    """A note on a task."""

    text: str = LongText


class PartIn(Body):
    """A part used."""

    part: str = Name
    quantity: float = Field(gt=0, le=100000, allow_inf_nan=False)
    unit: str = Field("pcs", min_length=1, max_length=20)


class AttachmentPublic(BaseModel):
    """A stored file of a task."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    task_id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_by: int | None
    uploaded_at: datetime

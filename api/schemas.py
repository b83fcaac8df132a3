"""Request and response bodies (Create / Update / Public per resource; lists as {data, count})."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from maintenance.handover import ItemState
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


class TitleIn(Body):
    """A title a person writes, in Simplified Chinese and English, each at most 200 characters."""

    zh: str = Field(max_length=200)
    en: str = Field(max_length=200)


class UserPublic(BaseModel):
    """A user as others see it."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    display_name: str
    roles: list[str]
    estates: list[str] | None = None  # the estates the roles are held for; null: the whole organisation
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
    estates: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None, max_length=1000, description="the estates the roles are held for; omitted or null: the whole "
                                           "organisation")


class UserUpdate(Body):
    """Changes to a user (admin); omitted fields stay."""

    roles: list[Role] | None = None
    active: bool | None = None
    password: str | None = Field(None, min_length=10, max_length=256)
    unlock: bool = False
    estates: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None, max_length=1000, description="hold the roles for these estates from now on")
    whole_organisation: bool = Field(False, description="hold the roles for the whole organisation")


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
    estate: str
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
    """A task (work order) with the record of its current cycle of work.

    `due_at` is the resolution deadline (the work done, the technician signed); `response_due_at` is when
    someone must have taken the task on (assigned, or started), `responded_at` when someone did.
    """

    model_config = ConfigDict(from_attributes=True)
    id: int
    estate: str
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
    started_at: datetime | None = None
    cycle: int = 1
    responded_at: datetime | None = None
    response_due_at: datetime | None = None
    resolution_due_at: datetime | None = None
    response_escalation: int = 0
    resolution_escalation: int = 0
    late: bool = False  # the scheduler created it after its time had passed (it was down)


class TaskCyclePublic(BaseModel):
    """One cycle of work on a task: who opened, took on, started, checked, signed, and how it ended."""

    model_config = ConfigDict(from_attributes=True)
    number: int
    current: bool = False
    reason: str
    opened_at: datetime
    opened_by: int | None
    response_due_at: datetime | None
    resolution_due_at: datetime | None
    responded_at: datetime | None
    responded_by: int | None
    response_escalation: int
    resolution_escalation: int
    started_at: datetime | None
    started_by: int | None
    checklist: list[dict[str, Any]]
    parts_used: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    workers: list[int]
    fault_cause: str | None
    action_taken: str | None
    parts_replaced: str | None
    remarks: str | None
    technician_signed_by: int | None
    technician_signed_at: datetime | None
    supervisor_signed_by: int | None
    supervisor_signed_at: datetime | None
    sent_back_at: datetime | None
    sent_back_by: int | None
    sent_back_reason: str | None
    cancelled_at: datetime | None
    cancelled_by: int | None
    cancel_reason: str | None
    closed_at: datetime | None


class TaskDetail(TaskPublic):
    """One task with every cycle of its record, oldest first; the current one is marked."""

    cycles: list[TaskCyclePublic]

    @model_validator(mode="after")
    def _mark_current(self) -> TaskDetail:
        for cycle in self.cycles:
            cycle.current = cycle.number == self.cycle
        return self


class TaskCreate(Body):
    """A task by hand: a fault report (anyone) or other kinds (supervisor)."""

    title: TitleIn
    kind: TaskKind = TaskKind.FAULT
    priority: Priority = Priority.NORMAL
    asset: str | None = Field(None, max_length=100)
    room: str | None = Field(None, max_length=100)
    description: str | None = Field(None, max_length=4000)
    due_at: datetime | None = None
    template: str | None = Field(None, min_length=1, max_length=100,
                                 description="a plan id (GET /api/plans): the task gets its checklist")


class AssignIn(Body):
    """Who does the task."""

    assignees: list[DbId] = Field(min_length=1, max_length=20)


class CompleteIn(Body):
    """The completion report (signed by the technician who sends it).

    `fault_cause` may be left out of a planned task or a round in which no checklist item failed.
    """

    fault_cause: str | None = Field(None, max_length=4000)
    action_taken: str = LongText
    parts_replaced: str | None = Field(None, max_length=4000)
    remarks: str | None = Field(None, max_length=4000)


class AckIn(Body):
    """An optional comment with an alarm's acknowledgement."""

    comment: str | None = Field(None, max_length=2000)


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
    """A stored file of a task; `checklist_key` names the checklist item it documents, `cycle` the cycle."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    task_id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_by: int | None
    uploaded_at: datetime
    checklist_key: str | None = None
    cycle: int = 1


# --- approved exceptions, shift handovers and the audit trail ----------------------------------------


class AlarmOnBoard(AlarmPublic):
    """An alarm as the board shows it: silenced by an approved exception (its id and end), or not."""

    silenced_by_exception: int | None = None
    silenced_until: datetime | None = None


class ExceptionCreate(Body):
    """A switch to keep out of AUTO for a time: named by its sensor, or by its pump when it has one switch."""

    asset: str | None = Field(None, min_length=1, max_length=100)
    sensor: str | None = Field(None, min_length=1, max_length=100)
    reason: str = LongText
    starts_at: AwareDatetime
    ends_at: AwareDatetime


class ExceptionPublic(BaseModel):
    """An approved exception (or the request for one) and what became of it."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    estate: str
    asset: str
    alarm_type: str
    sensor: str | None
    room: str
    reason: str
    starts_at: datetime
    ends_at: datetime
    state: str
    requested_by: int
    decided_by: int | None
    decided_at: datetime | None
    decided_reason: str | None
    ended_by: int | None
    ended_at: datetime | None
    end_reason: str | None
    alarm_id: int | None
    task_id: int | None
    created_at: datetime


class AbnormalReadingIn(Body):
    """A reading the outgoing shift found abnormal."""

    sensor: str = Field(min_length=1, max_length=100)
    value: float = Field(allow_inf_nan=False)
    at: AwareDatetime | None = None
    note: str | None = Field(None, max_length=2000)


class KeyOrToolIn(Body):
    """A key or tool handed over, and what became of it."""

    item: str = Name
    quantity: int = Field(1, ge=0, le=100_000)
    state: ItemState = ItemState.PRESENT
    note: str | None = Field(None, max_length=2000)


class HandoverCreate(Body):
    """A shift handover: the open alarms and tasks are filled in by the server when it is submitted."""

    room: str | None = Field(None, min_length=1, max_length=100)
    shift_started_at: AwareDatetime | None = None
    incoming_id: DbId | None = None
    abnormal_readings: list[AbnormalReadingIn] = Field(default_factory=list, max_length=200)
    keys_tools: list[KeyOrToolIn] = Field(default_factory=list, max_length=200)
    notes: str | None = Field(None, max_length=4000)
    urgent: str | None = Field(None, max_length=4000)


class HandoverDraftOut(BaseModel):
    """What a handover would carry if submitted now."""

    model_config = ConfigDict(from_attributes=True)
    room: str | None
    shift_started_at: datetime
    open_alarms: list[dict[str, Any]]
    open_tasks: list[dict[str, Any]]
    shift_alarms: list[dict[str, Any]]


class HandoverPublic(BaseModel):
    """A shift handover and who received it (the signature image is at `/api/handovers/{id}/signature`)."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    estate: str
    room: str | None
    shift_started_at: datetime
    submitted_at: datetime
    outgoing_id: int
    incoming_id: int | None
    open_alarms: list[dict[str, Any]]
    open_tasks: list[dict[str, Any]]
    shift_alarms: list[dict[str, Any]]
    abnormal_readings: list[dict[str, Any]]
    keys_tools: list[dict[str, Any]]
    notes: str | None
    urgent: str | None
    state: str
    received_by: int | None
    received_at: datetime | None
    signed_name: str | None
    signature_type: str | None
    signature_sha256: str | None
    dispute_reason: str | None
    escalated_at: datetime | None


class AuditEntryPublic(BaseModel):
    """One row of the audit trail: who (user id or "system", and their name), when, what, before, after."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    ts: datetime
    actor: str
    actor_name: str | None
    entity: str
    entity_id: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class SignInFailurePublic(BaseModel):
    """Failed sign-ins of one account name from one address, for administrators."""

    model_config = ConfigDict(from_attributes=True)

    account: str
    address: str
    failures: int
    first_failed_at: datetime
    last_failed_at: datetime
    blocked_until: datetime | None

"""Tasks (work orders): list, create, the lifecycle, checklist results, notes, parts and files.

Role rules live in the task service (403 when broken, with the reason); an action the task's state
does not allow is a 409 problem naming the current state. One task comes back with every cycle of
its record (`cycles`, oldest first, the current one marked); lists carry the current cycle only.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from fastapi.responses import FileResponse

from api.deps import CallerScope, Ctx, CurrentUser, task_in_scope
from api.schemas import (
    MAX_ID,
    AssignIn,
    AttachmentPublic,
    CheckIn,
    CompleteIn,
    NoteIn,
    Page,
    PartIn,
    PathId,
    ReasonIn,
    TaskCreate,
    TaskDetail,
    TaskPublic,
)
from maintenance.errors import InvalidInput, NotFound
from maintenance.task_flow import ChecklistItem
from maintenance.tasks import TaskFilter
from maintenance.uploads import store_upload
from maintenance.vocab import Priority, TaskState
from pumpwatch.portfolio import sensor_key
from pumpwatch.site import Text

router = APIRouter(prefix="/api/tasks", tags=["tasks"], dependencies=[Depends(task_in_scope)])
TaskPage = Page[TaskPublic]


def _out(task: object) -> TaskDetail:
    return TaskDetail.model_validate(task)


@router.get("", response_model=TaskPage)
def list_tasks(ctx: Ctx, user: CurrentUser, scope: CallerScope,
               state: Annotated[list[TaskState] | None, Query()] = None,
               mine: bool = False, assignee: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
               priority: Priority | None = None,
               room: str | None = None, asset: str | None = None, kind: str | None = None,
               due_before: datetime | None = None, due_after: datetime | None = None,
               offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
               limit: Annotated[int, Query(ge=1, le=500)] = 100, estate: str | None = None) -> Response:
    """Tasks by due time then priority; `mine=true` for the signed-in user's; due_after is inclusive.

    Every estate's, or `estate`'s; a room or asset is one estate's (needs `estate` with several).
    """
    place = ctx.estate(estate) if estate is not None or room is not None or asset is not None else None
    filters = TaskFilter(states=tuple(state) if state is not None else None,
                         assignee=user.id if mine else assignee, priority=priority,
                         room=room, asset=asset, kind=kind, due_before=due_before, due_after=due_after,
                         estate=place, within=scope.estates)

    def page() -> bytes:
        rows, total = ctx.tasks.list_rows(filters, offset, limit)
        # Validated and serialised once here; FastAPI would otherwise check the returned page a second time.
        return TaskPage.model_validate({"data": rows, "count": total}).model_dump_json().encode()

    # the same question within a second, nothing written since: the same answer (`api.answer_cache`)
    answer = ctx.task_lists.answer((filters, offset, limit), ctx.tasks.writes.version, page)
    return Response(answer, media_type="application/json")


@router.post("", response_model=TaskDetail, status_code=201)
def create(ctx: Ctx, user: CurrentUser, body: TaskCreate, estate: str | None = None) -> TaskDetail:
    """Report a fault (anyone) or create another kind of task (supervisor), from a plan's checklist.

    The task is of `estate` (the only estate's when the deployment has one).
    """
    place = ctx.estate(estate)
    task = ctx.tasks.create_task(user, Text(zh=body.title.zh, en=body.title.en), body.kind, body.priority,
                                 body.asset, body.room, body.description, body.due_at,
                                 _template_checklist(ctx, body.template, place), estate=place)
    return _out(task)


def _template_checklist(ctx: Ctx, plan_id: str | None, estate: str) -> list[ChecklistItem]:
    """The checklist of plan `plan_id` with how each item is answered (type, unit, range, attachment)."""
    if plan_id is None:
        return []
    try:
        plan = ctx.portfolio.estate(estate).plans.plan(plan_id)
    except KeyError as err:
        raise InvalidInput(f"no plan {plan_id!r} to take a checklist from") from err
    items = []
    for entry in plan.checklist:
        # A range given as a share of a pump's rated current is only known for one pump: left open here.
        known = entry.expected is not None and not entry.of_rated_current
        low, high = entry.expected if known and entry.expected is not None else (None, None)
        spec: dict[str, object] = {"type": entry.type.value, "unit": entry.unit, "min": low, "max": high}
        if entry.attachment_required:
            spec["attachment"] = "required"
        items.append(ChecklistItem(entry.key, entry.text, spec))
    return items


@router.get("/{task_id}", response_model=TaskDetail)
def get_task(task_id: PathId, ctx: Ctx, _user: CurrentUser) -> TaskDetail:
    """One task."""
    return _out(ctx.tasks.get(task_id))


@router.post("/{task_id}/assign", response_model=TaskDetail)
def assign(task_id: PathId, ctx: Ctx, user: CurrentUser, body: AssignIn) -> TaskDetail:
    """Assign (supervisor); a technician may assign a raised task to themselves."""
    return _out(ctx.tasks.assign(task_id, user, body.assignees))


@router.post("/{task_id}/start", response_model=TaskDetail)
def start(task_id: PathId, ctx: Ctx, user: CurrentUser) -> TaskDetail:
    """Start work (an assignee)."""
    return _out(ctx.tasks.start(task_id, user))


@router.post("/{task_id}/complete", response_model=TaskDetail)
def complete(task_id: PathId, ctx: Ctx, user: CurrentUser, body: CompleteIn) -> TaskDetail:
    """Hand in the completion report, signed by the technician."""
    return _out(ctx.tasks.complete(task_id, user, body.fault_cause, body.action_taken,
                                   body.parts_replaced, body.remarks))


@router.post("/{task_id}/verify", response_model=TaskDetail)
def verify(task_id: PathId, ctx: Ctx, user: CurrentUser) -> TaskDetail:
    """Sign off as supervisor (someone other than the technician)."""
    return _out(ctx.tasks.verify(task_id, user))


@router.post("/{task_id}/send-back", response_model=TaskDetail)
def send_back(task_id: PathId, ctx: Ctx, user: CurrentUser, body: ReasonIn) -> TaskDetail:
    """Return a completed task for rework (supervisor)."""
    return _out(ctx.tasks.send_back(task_id, user, body.reason))


@router.post("/{task_id}/cancel", response_model=TaskDetail)
def cancel(task_id: PathId, ctx: Ctx, user: CurrentUser, body: ReasonIn) -> TaskDetail:
    """Cancel an unfinished task (supervisor)."""
    return _out(ctx.tasks.cancel(task_id, user, body.reason))


@router.put("/{task_id}/checklist/{key}", response_model=TaskDetail)
async def check(task_id: PathId, key: str, ctx: Ctx, user: CurrentUser, body: CheckIn) -> TaskDetail:
    """Record one checklist item's result; a gauge reading is set beside its sensors' values."""
    task = await asyncio.to_thread(ctx.tasks.record_check, task_id, user, key, body.result, body.value,
                                   body.note)
    item = next((i for i in task.checklist if i["key"] == key), None)
    estate = task.estate or ctx.portfolio.only or ""  # its sensors are its estate's
    keys = {sensor_key(estate, s): s for s in (item or {}).get("compare") or []}
    sensors = [k for k in keys if k in ctx.catalog]
    if body.value is not None and sensors:
        found = await ctx.newest(sensors)
        if found:
            values = {keys[k]: r.value for k, r in found.items()}
            task = await asyncio.to_thread(ctx.tasks.compare_reading, task_id, user, key, values)
    return _out(task)


@router.post("/{task_id}/notes", response_model=TaskDetail)
def note(task_id: PathId, ctx: Ctx, user: CurrentUser, body: NoteIn) -> TaskDetail:
    """Add a note."""
    return _out(ctx.tasks.add_note(task_id, user, body.text))


@router.post("/{task_id}/parts", response_model=TaskDetail)
def part(task_id: PathId, ctx: Ctx, user: CurrentUser, body: PartIn) -> TaskDetail:
    """Record a part used."""
    return _out(ctx.tasks.add_part(task_id, user, body.part, body.quantity, body.unit))


@router.post("/{task_id}/attachments", response_model=AttachmentPublic, status_code=201)
async def attach(task_id: PathId, ctx: Ctx, user: CurrentUser,
                 file: Annotated[UploadFile, File(description="JPEG, PNG, WebP or PDF")],
                 checklist_key: Annotated[str | None, Form(
                     max_length=64, description="the checklist item this file documents")] = None,
                 ) -> AttachmentPublic:
    """Upload a photo or document (checked by content, size bounded), optionally for a checklist item."""
    data = await file.read(ctx.max_upload_bytes + 1)
    stored = store_upload(ctx.attachments_dir, data, ctx.max_upload_bytes)
    name = (file.filename or "upload").replace("/", "_").replace("\\", "_")[:200] or "upload"
    row = await asyncio.to_thread(ctx.tasks.add_attachment, task_id, user, name, stored.content_type,
                                  stored.size, stored.sha256, str(stored.path), checklist_key)
    return AttachmentPublic.model_validate(row)


@router.get("/{task_id}/attachments/{attachment_id}")
def download(task_id: PathId, attachment_id: PathId, ctx: Ctx, _user: CurrentUser) -> FileResponse:
    """A stored file, served as a download with its checked type."""
    row = ctx.tasks.get_attachment(attachment_id)
    if row.task_id != task_id:
        raise NotFound("attachment", attachment_id)
    if not row.stored_path:
        raise InvalidInput("the file is missing")
    return FileResponse(row.stored_path, media_type=row.content_type, filename=row.filename,
                        content_disposition_type="attachment",
                        headers={"X-Content-Type-Options": "nosniff",
                                 "Content-Security-Policy": "default-src 'none'; sandbox"})

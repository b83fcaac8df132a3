"""Shift handovers (交接班): the draft, handing over, accepting with a signature, disputing, the history.

Accepting takes a form (multipart): `signed_name` (a typed name) and/or `signature` (a drawn signature,
PNG, JPEG or WebP, checked by content, like task attachments).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import FileResponse
from pydantic import AwareDatetime

from api.deps import CallerScope, Ctx, CurrentUser, handover_in_scope, place_in_scope
from api.schemas import (
    MAX_ID,
    HandoverCreate,
    HandoverDraftOut,
    HandoverPublic,
    Page,
    PathId,
    ReasonIn,
)
from maintenance.errors import InvalidInput, NotFound
from maintenance.handover import AbnormalReading, HandoverFilter, HandoverService, KeyOrTool, Signature
from maintenance.uploads import store_upload

router = APIRouter(prefix="/api/handovers", tags=["handovers"], dependencies=[Depends(handover_in_scope)])


def _service(ctx: Ctx) -> HandoverService:
    assert ctx.handovers is not None
    return ctx.handovers


def _out(row: object) -> HandoverPublic:
    return HandoverPublic.model_validate(row)


@router.get("/draft", response_model=HandoverDraftOut)
def draft(ctx: Ctx, _user: CurrentUser, room: str | None = None,
          shift_started_at: AwareDatetime | None = None, estate: str | None = None) -> HandoverDraftOut:
    """What a handover of `room` (none: the whole estate) would carry now.

    The open alarms and tasks, and the alarms raised since the shift started (of `estate`: needed when
    the deployment has several).
    """
    return HandoverDraftOut.model_validate(_service(ctx).draft(room, shift_started_at, ctx.estate(estate)))


@router.get("", response_model=Page[HandoverPublic])
def search(ctx: Ctx, _user: CurrentUser, scope: CallerScope, room: str | None = None,
           person: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None, since: AwareDatetime | None = None,
           until: AwareDatetime | None = None, state: str | None = None,
           q: Annotated[str | None, Query(max_length=200)] = None,
           offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
           limit: Annotated[int, Query(ge=1, le=500)] = 50,
           estate: str | None = None) -> Page[HandoverPublic]:
    """Handovers, newest first: by estate, room, person (wrote, named or received), period, state, text."""
    place = place_in_scope(ctx, scope, estate, room is not None)
    rows, total = _service(ctx).search(HandoverFilter(room, person, since, until, state, q, place), offset,
                                       limit)
    if place is None and not scope.whole:  # several estates in scope: this page's rows of them
        rows = [r for r in rows if scope.covers(r.estate)]
        total = len(rows)
    return Page(data=[_out(r) for r in rows], count=total)


@router.post("", response_model=HandoverPublic, status_code=201)
def submit(ctx: Ctx, user: CurrentUser, body: HandoverCreate, estate: str | None = None) -> HandoverPublic:
    """Hand the shift over (the outgoing operator or technician), of `estate` (needed with several)."""
    readings = [AbnormalReading(r.sensor, r.value, r.at, r.note) for r in body.abnormal_readings]
    items = [KeyOrTool(i.item, i.quantity, i.state, i.note) for i in body.keys_tools]
    return _out(_service(ctx).submit(user, body.room, body.shift_started_at, readings, items, body.notes,
                                     body.urgent, body.incoming_id, ctx.estate(estate)))


@router.get("/{handover_id}", response_model=HandoverPublic)
def get_handover(handover_id: PathId, ctx: Ctx, _user: CurrentUser) -> HandoverPublic:
    """One handover."""
    return _out(_service(ctx).get(handover_id))


@router.post("/{handover_id}/accept", response_model=HandoverPublic)
async def accept(handover_id: PathId, ctx: Ctx, user: CurrentUser,
                 signed_name: Annotated[str | None, Form(max_length=128)] = None,
                 signature: Annotated[UploadFile | None, File(description="PNG, JPEG or WebP")] = None,
                 ) -> HandoverPublic:
    """Take the shift over (the incoming person), signing with a typed name, a drawn image or both."""
    drawn = None
    if signature is not None:
        data = await signature.read(ctx.max_upload_bytes + 1)
        stored = await asyncio.to_thread(store_upload, ctx.attachments_dir / "signatures", data,
                                         ctx.max_upload_bytes)
        if not stored.content_type.startswith("image/"):
            raise InvalidInput("a drawn signature is an image (PNG, JPEG or WebP)")
        drawn = Signature(stored.content_type, stored.sha256, str(stored.path))
    return _out(await asyncio.to_thread(_service(ctx).accept, handover_id, user, signed_name, drawn))


@router.post("/{handover_id}/dispute", response_model=HandoverPublic)
def dispute(handover_id: PathId, ctx: Ctx, user: CurrentUser, body: ReasonIn) -> HandoverPublic:
    """Refuse the handover as written, saying why (the incoming person)."""
    return _out(_service(ctx).dispute(handover_id, user, body.reason))


@router.get("/{handover_id}/signature")
def signature_image(handover_id: PathId, ctx: Ctx, _user: CurrentUser) -> FileResponse:
    """The drawn signature of whoever accepted the handover."""
    row = _service(ctx).get(handover_id)
    if row.signature_path is None or row.signature_type is None:
        raise NotFound("signature of handover", handover_id)
    return FileResponse(row.signature_path, media_type=row.signature_type,
                        headers={"X-Content-Type-Options": "nosniff",
                                 "Content-Security-Policy": "default-src 'none'; sandbox"})

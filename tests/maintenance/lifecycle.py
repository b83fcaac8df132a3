"""The task lifecycle as the workflow rules state it, written independently of maintenance/task_flow.py."""

from __future__ import annotations

from maintenance.task_flow import TaskAction
from maintenance.vocab import TaskState

S, A = TaskState, TaskAction

# Every move the lifecycle allows: raised -> assigned -> in progress -> done -> verified; sent back; cancel.
LEGAL = {
    (S.RAISED, A.ASSIGN): S.ASSIGNED, (S.ASSIGNED, A.ASSIGN): S.ASSIGNED,
    (S.IN_PROGRESS, A.ASSIGN): S.ASSIGNED, (S.SENT_BACK, A.ASSIGN): S.ASSIGNED,
    (S.RAISED, A.START): S.IN_PROGRESS, (S.ASSIGNED, A.START): S.IN_PROGRESS,
    (S.SENT_BACK, A.START): S.IN_PROGRESS,
    (S.IN_PROGRESS, A.COMPLETE): S.DONE,
    (S.DONE, A.VERIFY): S.VERIFIED,
    (S.DONE, A.SEND_BACK): S.SENT_BACK,
    (S.RAISED, A.CANCEL): S.CANCELLED, (S.ASSIGNED, A.CANCEL): S.CANCELLED,
    (S.IN_PROGRESS, A.CANCEL): S.CANCELLED, (S.SENT_BACK, A.CANCEL): S.CANCELLED,
    (S.DONE, A.REOPEN): S.RAISED, (S.VERIFIED, A.REOPEN): S.RAISED, (S.CANCELLED, A.REOPEN): S.RAISED,
}

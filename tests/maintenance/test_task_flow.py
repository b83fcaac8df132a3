"""The lifecycle table, SLA windows and escalation thresholds, checked against the workflow rules."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from maintenance.errors import IllegalTransition
from maintenance.task_flow import EscalationLevel, SlaPolicy, TaskAction, next_state, priority_for_severity
from maintenance.vocab import Priority, Role, TaskState
from pumpwatch.site import Severity
from tests.maintenance.lifecycle import LEGAL, A, S

ALL_MOVES = list(itertools.product(TaskState, TaskAction))
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("state", "action"), ALL_MOVES, ids=[f"{s}-{a}" for s, a in ALL_MOVES])
def test_next_state_follows_the_lifecycle(state: TaskState, action: TaskAction) -> None:
    if (state, action) in LEGAL:
        assert next_state(state.value, action) is LEGAL[(state, action)]
    else:
        with pytest.raises(IllegalTransition) as err:
            next_state(state.value, action)
        assert (err.value.current, err.value.attempted) == (state.value, action.value)


def test_verified_and_cancelled_tasks_are_final_except_for_a_repeat_alarm() -> None:
    for state in (S.VERIFIED, S.CANCELLED):
        assert [a for a in TaskAction if (state, a) in LEGAL] == [A.REOPEN]


def test_default_response_limits() -> None:
    sla = SlaPolicy()
    assert [sla.window(p) for p in Priority] == [timedelta(minutes=30), timedelta(hours=2),
                                                  timedelta(hours=24), timedelta(hours=72)]
    assert sla.due(T0, Priority.HIGH) == T0 + timedelta(hours=2)


def test_response_limits_are_configurable_and_validated() -> None:
    assert SlaPolicy(critical=timedelta(minutes=10)).window("critical") == timedelta(minutes=10)
    with pytest.raises(ValueError, match="positive"):
        SlaPolicy(low=timedelta(0))
    with pytest.raises(ValueError, match="reminder_fraction"):
        SlaPolicy(reminder_fraction=1.0)


@pytest.mark.parametrize(("minutes", "level"), [
    (0, EscalationLevel.NONE), (23.99, EscalationLevel.NONE), (24, EscalationLevel.REMINDER),
    (29.99, EscalationLevel.REMINDER), (30, EscalationLevel.SUPERVISOR), (59.99, EscalationLevel.SUPERVISOR),
    (60, EscalationLevel.DIRECTOR), (600, EscalationLevel.DIRECTOR)])
def test_escalation_thresholds_of_a_critical_task(minutes: float, level: EscalationLevel) -> None:
    sla = SlaPolicy()
    due = sla.due(T0, Priority.CRITICAL)
    assert sla.level_at(T0 + timedelta(minutes=minutes), due, Priority.CRITICAL) is level


def test_escalation_levels_notify_up_the_chain() -> None:
    notified = [level.notify for level in EscalationLevel]
    assert notified == [None, Role.TECHNICIAN, Role.SUPERVISOR, Role.DIRECTOR]


@pytest.mark.parametrize(("severity", "priority"), [
    (Severity.CRITICAL, Priority.CRITICAL), (Severity.MAJOR, Priority.HIGH),
    (Severity.MINOR, Priority.NORMAL), (Severity.WARNING, Priority.LOW)])
def test_alarm_severity_sets_task_priority(severity: Severity, priority: Priority) -> None:
    assert priority_for_severity(severity) is priority

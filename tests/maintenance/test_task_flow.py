"""The lifecycle table, SLA limits and escalation thresholds, checked against the workflow rules."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from maintenance.errors import IllegalTransition
from maintenance.task_flow import EscalationLevel, SlaPolicy, TaskAction, next_state, priority_for_severity
from maintenance.vocab import Priority, Role, SlaClock, TaskState
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


def test_default_response_and_resolution_limits() -> None:
    sla = SlaPolicy()
    assert [sla.limit(SlaClock.RESPONSE, p) for p in Priority] == [
        timedelta(minutes=30), timedelta(hours=2), timedelta(hours=24), timedelta(hours=72)]
    assert [sla.limit(SlaClock.RESOLUTION, p) for p in Priority] == [
        timedelta(hours=4), timedelta(hours=24), timedelta(hours=72), timedelta(days=7)]
    assert sla.window(Priority.HIGH) == timedelta(hours=2)  # the response limit, as the report reads it
    assert sla.deadlines(T0, Priority.HIGH) == (T0 + timedelta(hours=2), T0 + timedelta(hours=24))


def test_a_deadline_given_by_a_plan_bounds_the_response_too() -> None:
    sla = SlaPolicy()
    soon = T0 + timedelta(hours=2)
    assert sla.deadlines(T0, Priority.NORMAL, soon) == (soon, soon)  # not "respond within 24 h"
    later = T0 + timedelta(days=5)
    assert sla.deadlines(T0, Priority.NORMAL, later) == (T0 + timedelta(hours=24), later)


def test_limits_are_configurable_and_validated() -> None:
    sla = SlaPolicy(response={"critical": timedelta(minutes=10)}, resolution={"low": timedelta(days=14)})
    assert sla.limit(SlaClock.RESPONSE, "critical") == timedelta(minutes=10)
    assert sla.limit(SlaClock.RESPONSE, "high") == timedelta(hours=2)  # the others keep the defaults
    assert sla.limit(SlaClock.RESOLUTION, "low") == timedelta(days=14)
    with pytest.raises(ValueError, match="positive"):
        SlaPolicy(response={"low": timedelta(0)})
    with pytest.raises(ValueError, match="reminder_fraction"):
        SlaPolicy(reminder_fraction=1.0)
    with pytest.raises(ValueError, match="longer than its resolution"):
        SlaPolicy(response={"critical": timedelta(hours=5)})
    with pytest.raises(ValueError, match="unknown priorities: urgent"):
        SlaPolicy(response={"urgent": timedelta(hours=1)})


@pytest.mark.parametrize(("minutes", "level"), [
    (0, EscalationLevel.NONE), (23.99, EscalationLevel.NONE), (24, EscalationLevel.REMINDER),
    (29.99, EscalationLevel.REMINDER), (30, EscalationLevel.SUPERVISOR), (59.99, EscalationLevel.SUPERVISOR),
    (60, EscalationLevel.DIRECTOR), (600, EscalationLevel.DIRECTOR)])
def test_response_thresholds_of_a_critical_task(minutes: float, level: EscalationLevel) -> None:
    sla = SlaPolicy()
    due, _ = sla.deadlines(T0, Priority.CRITICAL)
    now = T0 + timedelta(minutes=minutes)
    assert sla.level_at(now, T0, due, SlaClock.RESPONSE, Priority.CRITICAL) is level


@pytest.mark.parametrize(("minutes", "level"), [
    (0, EscalationLevel.NONE), (95.99, EscalationLevel.NONE), (96, EscalationLevel.REMINDER),
    (120, EscalationLevel.SUPERVISOR), (240, EscalationLevel.DIRECTOR)])
def test_the_reminder_is_relative_to_the_tasks_own_window(minutes: float, level: EscalationLevel) -> None:
    # A normal task a plan gave 2 h: reminded at 80 % of its 2 h, not 24 h * 20 % before the deadline
    # (which fell before the task existed, so it was reminded at once).
    sla = SlaPolicy()
    due = T0 + timedelta(hours=2)
    for clock in SlaClock:
        assert sla.level_at(T0 + timedelta(minutes=minutes), T0, due, clock, Priority.NORMAL) is level


def test_a_cycle_opened_after_its_deadline_is_overdue_at_once() -> None:
    sla = SlaPolicy()
    due = T0 - timedelta(hours=1)  # a plan task the scheduler created late
    assert sla.level_at(T0, T0, due, SlaClock.RESOLUTION, Priority.NORMAL) is EscalationLevel.SUPERVISOR
    director = due + timedelta(hours=72)  # one of the priority's windows after the deadline
    assert sla.level_at(director, T0, due, SlaClock.RESOLUTION, Priority.NORMAL) is EscalationLevel.DIRECTOR


def test_escalation_levels_notify_up_the_chain() -> None:
    notified = [level.notify for level in EscalationLevel]
    assert notified == [None, Role.TECHNICIAN, Role.SUPERVISOR, Role.DIRECTOR]


@pytest.mark.parametrize(("severity", "priority"), [
    (Severity.CRITICAL, Priority.CRITICAL), (Severity.MAJOR, Priority.HIGH),
    (Severity.MINOR, Priority.NORMAL), (Severity.WARNING, Priority.LOW)])
def test_alarm_severity_sets_task_priority(severity: Severity, priority: Priority) -> None:
    assert priority_for_severity(severity) is priority

"""Something to do for every role of a fresh demo (part of the composition root, like stack.py).

`pumpwatch demo` starts on an empty state database, and the daily round opens at 08:00: started at 10:00,
a technician would have nothing to do until tomorrow. So at start the demo gets:

- today's inspection round of every room, as the scheduler makes it (same plan key, checklist with types,
  ranges and the sensors to compare), created even if its opening time has passed, assigned to a
  technician;
- fault reports in every state of their life: raised (unassigned), assigned, in progress, done (awaiting
  the supervisor), verified, sent back and cancelled, each step taken by the demo account whose job it is,
  so the audit trail reads as if people had done it;
- an access request the supervisor approved, waiting for the director's approval;
- a shift handover waiting for the incoming operator to accept it.

Every step goes through the maintenance services (role checks and audit rows as for anyone). The rounds are
idempotent by their plan key; the rest is made once per estate, while the estate has no fault report yet.
A demo of several estates seeds each of them (`pumpwatch demo --estates 3`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from maintenance.accounts import ensure_demo_users, estate_demo_username
from maintenance.calendar import occurrences, plan_schedules, zone_of
from maintenance.handover import AbnormalReading, ItemState, KeyOrTool
from maintenance.models import User, utc_from_epoch
from maintenance.tasks import TaskFilter
from maintenance.vocab import Priority, TaskKind
from pumpwatch.site import Site, Text

if TYPE_CHECKING:
    from inspection.scheduler import InspectionScheduler
    from maintenance.service import MaintenanceService

log = logging.getLogger(__name__)

ROUND_TECHNICIANS = ("tech", "tech2")  # today's rounds, room by room, in turn


@dataclass(frozen=True, slots=True)
class Seeded:
    """What the seed made: today's round task ids and the other task ids by state."""

    rounds: tuple[int, ...]
    tasks: dict[str, int]
    access_request: int | None
    handover: int | None


@dataclass(frozen=True, slots=True)
class _Fault:
    state: str
    asset: str
    zh: str
    en: str
    description: str
    priority: Priority = Priority.NORMAL


# Fault reports as people on site write them (the description is the reporter's own words).
_FAULTS = (
    _Fault("raised", "fire-cabinet", "柜门锁损坏", "cabinet door lock broken",
           "消防泵控制柜柜门锁扣断裂，柜门关不严。", Priority.HIGH),
    _Fault("assigned", "dom-p2", "机械密封渗水", "mechanical seal weeping",
           "2号生活泵机械密封处有少量渗水，地面有水渍。"),
    _Fault("in_progress", "fire-sump", "液位浮球卡滞", "sump float sticking",
           "集水坑液位浮球偶尔卡住，排污泵启动滞后。"),
    _Fault("done", "dom-filter", "过滤器压差偏高", "strainer pressure drop high",
           "进水过滤器压差比上周高，怀疑滤芯堵塞。"),
    _Fault("verified", "dom-cabinet", "柜内照明不亮", "cabinet light out",
           "生活泵控制柜柜内照明灯不亮。", Priority.LOW),
    _Fault("sent_back", "fire-jockey", "稳压泵启停频繁", "jockey pump cycling often",
           "夜间稳压泵约每 10 分钟启动一次，比平时频繁。"),
    _Fault("cancelled", "dom-p1", "1号泵异响", "pump 1 noise",
           "1号生活泵运行时有异响（与前一条报修重复）。"),
)
# What the technician wrote when finishing each report that got that far.
_REPORTS = {
    "done": ("滤芯积泥", "拆洗滤芯，复装后压差恢复正常"),
    "verified": ("灯管老化", "更换LED灯管"),
    "sent_back": ("管网有微小渗漏", "检查了稳压泵本体，未发现问题"),
}


def seed_demo(site: Site, state: MaintenanceService, scheduler: InspectionScheduler | None,
              estates: Sequence[str] = ()) -> Seeded:
    """Give a fresh demo's accounts their work in the estate of `site` (see the module's description).

    `estates`: every estate of the demo's deployment; with several, each estate's own technician and
    supervisor (`technician-<estate>`, `supervisor-<estate>`) take that estate's fault reports.
    """
    estate = site.site.id
    ensure_demo_users(state.auth, estates)
    users = {name: found for name in ("operator", "tech", "tech2", "supervisor", "director")
             if (found := state.auth.get_by_username(name)) is not None}
    for role, name in (("technician", "tech"), ("supervisor", "supervisor")):
        own = state.auth.get_by_username(estate_demo_username(role, estate)) if len(estates) > 1 else None
        if own is not None:
            users[name] = own
    rounds = _todays_rounds(site, state, scheduler, users)
    if state.tasks.list_tasks(TaskFilter(kind=TaskKind.FAULT.value, estate=estate), 0, 1)[1]:
        return Seeded(rounds, {}, None, None)  # seeded on an earlier start: leave people's work alone
    tasks = _faults(site, state, users)
    return Seeded(rounds, tasks, _access_request(site, state, users), _handover(site, state, users))


def _todays_rounds(site: Site, state: MaintenanceService, scheduler: InspectionScheduler | None,
                   users: dict[str, User]) -> tuple[int, ...]:
    """Today's inspection round of every room, made the scheduler's way and assigned in turn."""
    if scheduler is None:
        return ()
    zone = zone_of(site)
    now = utc_from_epoch(state.clock.now())
    local = now.astimezone(zone)
    day_start = datetime(local.year, local.month, local.day, tzinfo=zone)
    made: list[int] = []
    schedule = scheduler.estate(site.site.id)
    for plan in schedule.plans:
        if plan.task_kind != TaskKind.INSPECTION.value:
            continue
        for scheduled, targets in plan_schedules(site, plan):
            for occ in occurrences(scheduled, targets, zone, day_start, day_start + timedelta(days=1), "due"):
                if occ.skipped:
                    continue
                # The scheduler's own way of turning an occurrence into its task (plan key, title,
                # checklist types, ranges and sensors), so this round is the one it would have made at the
                # opening time; the scheduler later finds the plan key taken and leaves it be.
                made.append(schedule._create(plan, occ, now, late=False))
    supervisor = users.get("supervisor")
    for i, task_id in enumerate(made):
        technician = users.get(ROUND_TECHNICIANS[i % len(ROUND_TECHNICIANS)])
        if supervisor is None or technician is None or state.tasks.get(task_id).assignee_ids:
            continue
        state.tasks.assign(task_id, supervisor, [technician.id])
    return tuple(made)


def _faults(site: Site, state: MaintenanceService, users: dict[str, User]) -> dict[str, int]:
    """One fault report in each state, each step by the account whose job it is."""
    names = {item.id: (item.name or Text(zh=item.id, en=item.id), room.id)
             for room in site.rooms for item in room.equipment}
    operator, tech, supervisor = users["operator"], users["tech"], users["supervisor"]
    tasks = state.tasks
    made: dict[str, int] = {}
    for fault in _FAULTS:
        if fault.asset not in names:
            continue
        name, room = names[fault.asset]
        title = Text(zh=f"报修：{name.zh}，{fault.zh}", en=f"Fault report: {name.en}, {fault.en}")
        task = tasks.create_task(operator, title, TaskKind.FAULT, fault.priority, asset=fault.asset,
                                 room=room, description=fault.description, estate=site.site.id)
        made[fault.state] = task.id
        if fault.state == "raised":
            continue
        if fault.state == "cancelled":
            tasks.cancel(task.id, supervisor, "与另一条报修重复")
            continue
        tasks.assign(task.id, supervisor, [tech.id])
        if fault.state == "assigned":
            continue
        tasks.start(task.id, tech)
        if fault.state == "in_progress":
            continue
        cause, action = _REPORTS[fault.state]
        tasks.complete(task.id, tech, cause, action)
        if fault.state == "verified":
            tasks.verify(task.id, supervisor)
        elif fault.state == "sent_back":
            tasks.send_back(task.id, supervisor, "请检查管网末端和报警阀是否渗漏，并附照片")
    return made


def _access_request(site: Site, state: MaintenanceService, users: dict[str, User]) -> int | None:
    """A contractor's visit tomorrow morning: approved by the supervisor, waiting for the director."""
    room = site.rooms[0].id
    now = utc_from_epoch(state.clock.now())
    start = now + timedelta(days=1)
    row = state.approvals.request_access(users["operator"], "李工", "检修生活泵房配电箱",
                                         room, start, start + timedelta(hours=3), escort_id=users["tech"].id,
                                         organisation="安达机电工程有限公司",
                                         escort_deputy_id=users["tech2"].id, estate=site.site.id)
    state.approvals.approve_access(row.id, users["supervisor"])
    return row.id


def _handover(site: Site, state: MaintenanceService, users: dict[str, User]) -> int | None:
    """The night technician's handover of the domestic room, waiting for the operator to accept it."""
    room = site.rooms[0]
    pressure = next((s.id for r, _e, s in site.iter_sensors()
                     if r.id == room.id and s.kind.value == "pressure"), None)
    readings = [AbnormalReading(pressure, 0.29, note="凌晨用水低谷时压力略低于启泵压力，泵已正常启动")] \
        if pressure is not None else []
    row = state.handovers.submit(
        users["tech2"], room.id, None, abnormal_readings=readings,
        keys_tools=[KeyOrTool("泵房门钥匙", 2), KeyOrTool("控制柜钥匙", 1),
                    KeyOrTool("管钳", 1, ItemState.LENT, "借给保洁班清理集水坑")],
        notes="夜班巡检一次，两台生活泵运行正常。", urgent="2号泵机械密封渗水，已报修待处理。",
        incoming_id=users["operator"].id, estate=site.site.id)
    return row.id

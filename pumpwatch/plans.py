"""Maintenance plans in the site file: what the regulation requires, when, for which rooms and pumps.

With no `plans:` section a site still gets every plan of PUMP-ROOM-RULES.md (the built-in plans below).
A site plan with a built-in id changes only the fields it sets; a plan with a new id adds a plan.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator

from pumpwatch.model_base import Identifier, Model, Text

Priority = Literal["critical", "high", "normal", "low"]
ROTATION_ANCHOR = date(2026, 1, 1)  # rotation days count from here: 2026-01-01, -03, -05, ...


def _time_of_day(value: Any) -> Any:
    # YAML reads an unquoted 8:00 as the base-60 number 480; refuse it rather than guess.
    if isinstance(value, int | float):
        raise ValueError("write the time of day in quotes, like '08:00'")
    return value


LocalTime = Annotated[time, BeforeValidator(_time_of_day)]


class ItemType(StrEnum):
    """What answer a checklist item takes."""

    PASS_FAIL = "pass_fail"
    NUMBER = "number"
    TEXT = "text"
    PHOTO = "photo"  # a photo is required
    SIGNATURE = "signature"


class ChecklistEntry(Model):
    """One item of a plan's checklist; a number item has an expected range and unit."""

    key: Identifier
    text: Text
    type: ItemType = ItemType.PASS_FAIL
    unit: str | None = None
    expected: tuple[float, float] | None = Field(None, description="[min, max] of a number item")
    sensor_kind: str | None = Field(None, description="compare with the room's sensors of this kind "
                                                             "(checked by sitecheck)")
    equipment_type: str | None = Field(None, description="only sensors on this equipment type (pump, ...)")
    sensors: tuple[Identifier, ...] = Field((), description="compare with these sensors (instead of kind)")

    @model_validator(mode="after")
    def _number_has_range(self) -> ChecklistEntry:
        if self.type is ItemType.NUMBER:
            if self.expected is None or self.unit is None:
                raise ValueError("a number item needs 'expected' [min, max] and 'unit'")
            lo, hi = self.expected
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError("expected must be [min, max] with min < max")
        elif self.expected is not None:
            raise ValueError("'expected' applies to number items only")
        return self


class Weekday(StrEnum):
    """Days of the week, Monday first (Python's weekday() order)."""

    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"

    @property
    def number(self) -> int:
        """0 for Monday ... 6 for Sunday."""
        return list(Weekday).index(self)


class EveryDays(Model):
    """Every `days` calendar days counted from `anchor`, due at local time `at`."""

    type: Literal["every_days"]
    days: int = Field(1, ge=1, le=366)
    anchor: date = ROTATION_ANCHOR
    at: LocalTime = time(8, 0)


class Weekly(Model):
    """Once a week on `weekday` at local time `at`."""

    type: Literal["weekly"]
    weekday: Weekday = Weekday.MONDAY
    at: LocalTime = time(17, 0)


class Monthly(Model):
    """Once a month on `day` (past the month's end: its last day) at local time `at`."""

    type: Literal["monthly"]
    day: int = Field(28, ge=1, le=31)
    at: LocalTime = time(17, 0)


def _month_day(value: str) -> tuple[int, int]:
    month, day = (int(part) for part in value.split("-"))
    return month, day


class Yearly(Model):
    """A yearly window: opens at 00:00 on `opens` (MM-DD), due at `at` on `due` (the next year if earlier)."""

    type: Literal["yearly"]
    opens: str = Field(pattern=r"^\d\d-\d\d$")
    due: str = Field(pattern=r"^\d\d-\d\d$")
    at: LocalTime = time(17, 0)

    @field_validator("opens", "due")
    @classmethod
    def _real_day(cls, v: str) -> str:
        month, day = _month_day(v)
        try:
            date(2001, month, day)  # a common year: 02-29 would vanish three years in four
        except ValueError:
            raise ValueError(f"{v!r} is not a day of every year (MM-DD)") from None
        return v

    @property
    def opens_md(self) -> tuple[int, int]:
        """(month, day) the window opens."""
        return _month_day(self.opens)

    @property
    def due_md(self) -> tuple[int, int]:
        """(month, day) the work is due."""
        return _month_day(self.due)


class RunHours(Model):
    """Every `every_hours` running hours of a pump (its run_hours sensor), due `due_days` after opening."""

    type: Literal["run_hours"]
    every_hours: float = Field(gt=0)
    lead_hours: float = Field(0.0, ge=0, description="running hours before the mark that open the task")
    due_days: float = Field(14.0, gt=0)
    sensors: dict[Identifier, Identifier] = Field(
        default_factory=dict, description="pump -> run_hours sensor; default: the pump's own")


Schedule = Annotated[EveryDays | Weekly | Monthly | Yearly | RunHours, Field(discriminator="type")]
CALENDAR_SCHEDULES = (EveryDays, Weekly, Monthly, Yearly)


class Scope(StrEnum):
    """What one occurrence of a plan covers: one task per site, room, pump or duty group."""

    SITE = "site"
    ROOM = "room"
    PUMP = "pump"
    DUTY_GROUP = "duty_group"


class Skip(Model):
    """Leave out the occurrence of local date `date` (no task), with the reason on record."""

    date: date
    reason: str = Field(min_length=1)


class Reschedule(Model):
    """Move the occurrence of local date `date` to local time `to`; its key stays the same."""

    date: date
    to: datetime = Field(description="local date and time, e.g. 2026-03-06 10:00")
    reason: str = Field(min_length=1)

    @field_validator("to")
    @classmethod
    def _local(cls, v: datetime) -> datetime:
        if v.tzinfo is not None:
            raise ValueError("give a local time without a zone; the site's time zone applies")
        return v


class Blackout(Model):
    """Days (inclusive) with no work of this plan: occurrences are skipped or postponed past the end."""

    start: date
    end: date
    reason: str = Field(min_length=1)
    action: Literal["skip", "postpone"] = "postpone"

    @model_validator(mode="after")
    def _ordered(self) -> Blackout:
        if self.end < self.start:
            raise ValueError("end must not be before start")
        return self


class Plan(Model):
    """One plan of the plan table: schedule, scope, task text and checklist, exceptions."""

    id: Identifier
    name: Text | None = Field(None, description="required for a plan that is not built in")
    description: Text | None = None
    enabled: bool = True
    action: Literal["task", "rotate"] = Field("task", description="rotate: a duty/standby rotation")
    scope: Scope = Scope.ROOM
    rooms: tuple[Identifier, ...] = Field((), description="only these rooms (default: all)")
    pump_kinds: tuple[str, ...] = Field((), description="scope pump: only these pump kinds")
    assets: tuple[Identifier, ...] = Field((), description="scope pump or duty_group: only these ids")
    schedule: Schedule | None = Field(None, description="required for a plan that is not built in")
    lead_hours: float = Field(0.0, ge=0, description="the task opens this long before it is due")
    priority: Priority = "normal"
    task_kind: Literal["plan", "inspection"] = "plan"
    checklist: tuple[ChecklistEntry, ...] = ()
    skip: tuple[Skip, ...] = ()
    reschedule: tuple[Reschedule, ...] = ()
    blackout: tuple[Blackout, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        if self.action == "rotate" and self.scope is not Scope.DUTY_GROUP:
            raise ValueError("a rotation plan has scope duty_group")
        if isinstance(self.schedule, RunHours) and self.scope is not Scope.PUMP:
            raise ValueError("a run_hours schedule needs scope pump")
        if self.action == "rotate" and isinstance(self.schedule, RunHours | Yearly):
            raise ValueError("a rotation runs on a calendar schedule (every_days, weekly, monthly)")
        keys = [item.key for item in self.checklist]
        if len(keys) != len(set(keys)):
            raise ValueError("checklist keys must be distinct")
        return self

    @property
    def title(self) -> Text:
        """The plan's name (complete plans always have one)."""
        assert self.name is not None, "an effective plan has a name"
        return self.name


class RotationSettings(Model):
    """How duty/standby rotation picks the next duty pump and checks that the swap worked."""

    strategy: Literal["alternate", "fewest_hours"] = "alternate"
    verify_minutes: float = Field(30.0, gt=0, description="the new duty pump must prove itself this soon")
    confirm_hours: float = Field(2.0, gt=0, description="a swap by hand is due this long after the time")
    failed_start_seconds: float = Field(15.0, gt=0, description="demanded this long with no current: failed")
    running_current: float = Field(0.1, gt=0, le=1, description="share of rated current that counts as "
                                                                "running")
    duty_select: dict[Identifier, Identifier] = Field(
        default_factory=dict, description="duty group -> writable duty_select sensor (default: the room's)")
    pressure: dict[Identifier, Identifier] = Field(
        default_factory=dict, description="duty group -> supply pressure sensor (default: the room's header)")


class PlanSettings(Model):
    """The plan table of a site: the regulation's plans (unless switched off) and the site's own."""

    regulation: bool = Field(True, description="include the built-in plans of the regulation")
    plans: tuple[Plan, ...] = ()
    rotation: RotationSettings = RotationSettings()
    catch_up_days: int = Field(31, ge=1, le=400, description="how far back a restart looks for missed work")
    late_after_minutes: float = Field(5.0, ge=0, description="a task created this long after it opened "
                                                              "is marked late")

    @model_validator(mode="after")
    def _complete(self) -> PlanSettings:
        builtin = {plan.id for plan in BUILTIN_PLANS} if self.regulation else set()
        seen: set[str] = set()
        for plan in self.plans:
            if plan.id in seen:
                raise ValueError(f"plan id {plan.id!r} given twice")
            seen.add(plan.id)
            if plan.id not in builtin and (plan.name is None or plan.schedule is None):
                raise ValueError(f"plan {plan.id!r} is not built in: it needs 'name' and 'schedule'")
        self.effective()  # a change to a built-in plan must still make a consistent plan
        return self

    def effective(self) -> tuple[Plan, ...]:
        """The plans in force: built-ins with the site's changes applied, then the site's new plans."""
        own = {plan.id: plan for plan in self.plans}
        out: list[Plan] = []
        if self.regulation:
            for plan in BUILTIN_PLANS:
                change = own.pop(plan.id, None)
                out.append(plan if change is None else _merge(plan, change))
        out += own.values()
        return tuple(plan for plan in out if plan.enabled)

    def plan(self, plan_id: str) -> Plan:
        """The effective plan with this id; KeyError if there is none."""
        for plan in self.effective():
            if plan.id == plan_id:
                return plan
        raise KeyError(plan_id)


def _merge(base: Plan, change: Plan) -> Plan:
    """The built-in plan with the fields the site set replaced (validated again as a whole)."""
    data = base.model_dump() | change.model_dump(include=set(change.model_fields_set))
    try:
        return Plan.model_validate(data)
    except ValidationError as err:
        reasons = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
        raise ValueError(f"plan {base.id!r}: {reasons}") from None


def _t(zh: str, en: str) -> Text:
    return Text(zh=zh, en=en)


# The inspection round of the regulation (巡检内容 ①-⑩), in the product's own words.
ROUND_CHECKLIST: tuple[ChecklistEntry, ...] = (
    ChecklistEntry(key="noise-vibration", type=ItemType.PASS_FAIL, sensor_kind="vibration",
                   equipment_type="pump",
                   text=_t("各水泵运转声音正常，无明显振动", "Pumps run quietly, without marked vibration")),
    ChecklistEntry(key="motor-temperature", type=ItemType.NUMBER, unit="°C", expected=(5.0, 80.0),
                   sensor_kind="temperature", equipment_type="pump",
                   text=_t("电机及控制柜无焦味；记录电机外壳温度",
                           "No burning smell at motors or cabinet; note the motor casing temperature")),
    ChecklistEntry(key="supply-voltage", type=ItemType.NUMBER, unit="V", expected=(342.0, 418.0),
                   sensor_kind="voltage",
                   text=_t("电压表读数（电流表、指示灯同时核对）",
                           "Voltmeter reading (check the ammeters and signal lamps too)")),
    ChecklistEntry(key="controls-auto", type=ItemType.PASS_FAIL, sensor_kind="switch_position",
                   text=_t("转换开关在自动位，控制元件动作正常",
                           "Selector switches in AUTO, control components respond normally")),
    ChecklistEntry(key="pressure-gauge", type=ItemType.NUMBER, unit="MPa", expected=(0.25, 1.2),
                   sensor_kind="pressure",
                   text=_t("机械压力表读数（与出水压力传感器对照）",
                           "Mechanical pressure gauge reading (compare with the outlet pressure sensor)")),
    ChecklistEntry(key="leaks", type=ItemType.PASS_FAIL, sensor_kind="leak",
                   text=_t("压力罐、闸阀、法兰无渗漏，水泵无成线漏水",
                           "No leaks at pressure tank, gate valves or flanges; no pump leaking in a stream")),
    ChecklistEntry(key="filter", type=ItemType.TEXT, sensor_kind="differential_pressure",
                   text=_t("过滤器状况：是否需要清洗或更换滤芯",
                           "Strainer condition: does it need cleaning or a new cartridge?")),
    ChecklistEntry(key="valves-level", type=ItemType.PASS_FAIL, sensor_kind="level", equipment_type="tank",
                   text=_t("止回阀、浮球阀、液位控制器工作可靠",
                           "Check valves, float valves and level controllers work reliably")),
    ChecklistEntry(key="sump", type=ItemType.PASS_FAIL, sensor_kind="level", equipment_type="sump",
                   text=_t("排水井畅通无堵塞", "Drainage sump clear, not blocked")),
    ChecklistEntry(key="animal-guards", type=ItemType.PHOTO,
                   text=_t("防小动物设施完好（拍照）", "Barriers against small animals intact (photo)")),
)

SWEEP_CHECKLIST: tuple[ChecklistEntry, ...] = (
    ChecklistEntry(key="floor-clean", text=_t("地面清扫干净，无积水", "Floor swept, no standing water")),
    ChecklistEntry(key="no-clutter", text=_t("机房内无堆放杂物", "Nothing stored in the room")),
    ChecklistEntry(key="light-air", text=_t("通风、照明良好，门窗完好",
                                             "Ventilation and lighting good, doors and windows intact")),
)

CONTACTOR_CHECKLIST: tuple[ChecklistEntry, ...] = (
    ChecklistEntry(key="power-isolated", text=_t("已断电并挂牌", "Power isolated and tagged out")),
    ChecklistEntry(key="contacts", text=_t("主触头无烧蚀，必要时打磨或更换",
                                           "Main contacts free of pitting; dressed or replaced as needed")),
    ChecklistEntry(key="clean-tighten",
                   text=_t("清除灰尘，紧固接线端子", "Dust removed, terminals tightened")),
    ChecklistEntry(key="coil-current", type=ItemType.NUMBER, unit="A", expected=(0.0, 200.0),
                   sensor_kind="current", equipment_type="pump",
                   text=_t("恢复运行后的电机电流", "Motor current after putting it back in service")),
    ChecklistEntry(key="signed", type=ItemType.SIGNATURE,
                   text=_t("检查人签名", "Signature of the technician who did the check")),
)

UNIT_CLEANING_CHECKLIST: tuple[ChecklistEntry, ...] = (
    ChecklistEntry(key="no-dust", text=_t("机组无积尘", "Units free of dust")),
    ChecklistEntry(key="no-stains", text=_t("无水渍、油渍", "No water or oil stains")),
    ChecklistEntry(key="photo", type=ItemType.PHOTO, text=_t("清扫后拍照", "Photo after cleaning")),
)

FIRE_CHECKLIST: tuple[ChecklistEntry, ...] = (
    ChecklistEntry(key="switch-auto", sensor_kind="switch_position", equipment_type="pump",
                   text=_t("控制柜转换开关在自动位", "Cabinet selector switch in AUTO")),
    ChecklistEntry(key="test-run", text=_t("手动试运行正常，无异响", "Manual test run normal, no odd noise")),
    ChecklistEntry(key="main-pressure", type=ItemType.NUMBER, unit="MPa", expected=(0.3, 2.0),
                   sensor_kind="pressure",
                   text=_t("试运行时管网压力", "Main pressure during the test run")),
    ChecklistEntry(key="labels", text=_t("操作标识清晰", "Operating labels clear")),
    ChecklistEntry(key="signed", type=ItemType.SIGNATURE,
                   text=_t("按消防月检规定签名确认", "Signed as the fire system's monthly inspection")),
)

ANTI_RUST_CHECKLIST: tuple[ChecklistEntry, ...] = (
    ChecklistEntry(key="derust", text=_t("除锈、除尘完成", "Rust and dust removed")),
    ChecklistEntry(key="paint", text=_t("防锈漆涂刷完成", "Anti-rust paint applied")),
    ChecklistEntry(key="photo", type=ItemType.PHOTO, text=_t("处理后拍照", "Photo after treatment")),
    ChecklistEntry(key="materials", type=ItemType.TEXT,
                   text=_t("所用材料及数量", "Materials used and amounts")),
)

ROTATION_CHECKLIST: tuple[ChecklistEntry, ...] = (
    ChecklistEntry(key="swapped", text=_t("已切换主用泵，开关置于自动位",
                                           "Duty pump swapped, switches back in AUTO")),
    ChecklistEntry(key="running", text=_t("新主用泵启动正常，压力稳定",
                                           "New duty pump starts normally and pressure holds")),
)

LUBRICATION_CHECKLIST: tuple[ChecklistEntry, ...] = (
    ChecklistEntry(key="grease", text=_t("轴承已按规定加注润滑脂", "Bearings greased as specified")),
    ChecklistEntry(key="bearing-temp", type=ItemType.NUMBER, unit="°C", expected=(5.0, 80.0),
                   sensor_kind="temperature", equipment_type="pump",
                   text=_t("运行30分钟后电机温度", "Motor temperature after 30 minutes running")),
)

BUILTIN_PLANS: tuple[Plan, ...] = (
    Plan(id="duty-rotation", action="rotate", scope=Scope.DUTY_GROUP, priority="normal",
         name=_t("主备泵轮换", "Duty/standby rotation"),
         description=_t("生活水泵隔日轮换运行", "Domestic pumps swap duty every other day"),
         schedule=EveryDays(type="every_days", days=2, at=time(8, 0)), checklist=ROTATION_CHECKLIST),
    Plan(id="daily-round", scope=Scope.ROOM, task_kind="inspection", lead_hours=9.0,
         name=_t("每日巡检", "Daily inspection round"),
         schedule=EveryDays(type="every_days", days=1, at=time(17, 0)), checklist=ROUND_CHECKLIST),
    Plan(id="weekly-sweep", scope=Scope.ROOM, lead_hours=9.0, priority="low",
         name=_t("机房每周打扫", "Weekly room sweep"),
         schedule=Weekly(type="weekly", weekday=Weekday.MONDAY, at=time(17, 0)), checklist=SWEEP_CHECKLIST),
    Plan(id="contactor-check", scope=Scope.PUMP, pump_kinds=("domestic",), lead_hours=5 * 24.0,
         name=_t("主接触器检查清洁", "Main contactor inspection and cleaning"),
         schedule=Monthly(type="monthly", day=20, at=time(17, 0)), checklist=CONTACTOR_CHECKLIST),
    Plan(id="unit-cleaning", scope=Scope.ROOM, lead_hours=5 * 24.0, priority="low",
         name=_t("机组每月清扫", "Monthly unit cleaning"),
         schedule=Monthly(type="monthly", day=25, at=time(17, 0)), checklist=UNIT_CLEANING_CHECKLIST),
    Plan(id="fire-monthly", scope=Scope.PUMP, pump_kinds=("fire", "sprinkler"), lead_hours=5 * 24.0,
         priority="high", name=_t("消防泵、喷淋泵月检", "Monthly fire and sprinkler pump inspection"),
         schedule=Monthly(type="monthly", day=10, at=time(17, 0)), checklist=FIRE_CHECKLIST),
    Plan(id="pipe-anti-rust", scope=Scope.ROOM,
         name=_t("管道年度防锈处理", "Annual pipe anti-rust treatment"),
         schedule=Yearly(type="yearly", opens="12-01", due="01-31", at=time(17, 0)),
         checklist=ANTI_RUST_CHECKLIST),
    Plan(id="bearing-lubrication", scope=Scope.PUMP,
         name=_t("轴承润滑", "Bearing lubrication"),
         schedule=RunHours(type="run_hours", every_hours=2000.0, lead_hours=50.0, due_days=14.0),
         checklist=LUBRICATION_CHECKLIST),
)

"""Maintenance plans in the site file: what the regulation requires, when, for which rooms and pumps.

With no `plans:` section a site still gets every plan of PUMP-ROOM-RULES.md (the built-in plans below),
plus what the standards the regulation leans on require of the same rooms: the fire pumps' weekly and
monthly test runs (GB 50974-2014, 14.0.4) and the cleaning and disinfection of domestic water tanks
(GB 17051-1997 and local rules). A site plan with a built-in id changes only the fields it sets; a plan
with a new id adds a plan.
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
    DOCUMENT = "document"  # a document (a test report, a certificate) is uploaded for the item


class ChecklistEntry(Model):
    """One item of a plan's checklist; a number item has an expected range and unit."""

    key: Identifier
    text: Text
    type: ItemType = ItemType.PASS_FAIL
    unit: str | None = None
    expected: tuple[float, float] | None = Field(None, description="[min, max] of a number item")
    of_rated_current: bool = Field(False, description="expected is a share of the pump's rated current "
                                                     "(unit A, scope pump)")
    attachment: Literal["required", "optional"] | None = Field(
        None, description="required: the task cannot be verified until a file is attached to this item "
                          "(a document item requires one unless it says optional)")
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
        if self.of_rated_current and (self.type is not ItemType.NUMBER or self.unit != "A"):
            raise ValueError("'of_rated_current' applies to number items in A")
        return self

    @property
    def attachment_required(self) -> bool:
        """True when the task cannot be verified before a file is attached to this item."""
        if self.attachment is not None:
            return self.attachment == "required"
        return self.type is ItemType.DOCUMENT


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


class EveryMonths(Model):
    """Every `months` months on the day of month of `anchor` (past a month's end: its last day), at `at`.

    Counted from `anchor`, which is itself an occurrence: months 6 from 2026-04-15 falls due on 15 April
    and 15 October of every year.
    """

    type: Literal["every_months"]
    months: int = Field(6, ge=1, le=24)
    anchor: date = date(2026, 4, 15)
    at: LocalTime = time(17, 0)


class RunHours(Model):
    """Every `every_hours` running hours of a pump (its run_hours sensor), due `due_days` after opening."""

    type: Literal["run_hours"]
    every_hours: float = Field(gt=0)
    lead_hours: float = Field(0.0, ge=0, description="running hours before the mark that open the task")
    due_days: float = Field(14.0, gt=0)
    sensors: dict[Identifier, Identifier] = Field(
        default_factory=dict, description="pump -> run_hours sensor; default: the pump's own")


Schedule = Annotated[EveryDays | Weekly | Monthly | EveryMonths | Yearly | RunHours,
                     Field(discriminator="type")]
CALENDAR_SCHEDULES = (EveryDays, Weekly, Monthly, EveryMonths, Yearly)
# Work due once or twice a year (a seasonal window, a half-yearly cleaning): a missed one is not made good
# by the next, so the scheduler creates it whatever happened (see `unmissable`).
UNMISSABLE_SCHEDULES = (Yearly, EveryMonths)


class Scope(StrEnum):
    """What one occurrence of a plan covers: one task per site, room, pump, duty group or tank."""

    SITE = "site"
    ROOM = "room"
    PUMP = "pump"
    DUTY_GROUP = "duty_group"
    TANK = "tank"


class PumpTestRun(Model):
    """The plan's tasks are test runs of its pumps, recognised from readings (GB 50974-2014, 14.0.4).

    start auto: a start under automatic control (switch in AUTO) that ran `minutes` completes the task by
    itself, auto-recorded, for the supervisor to verify. start manual: a start by hand (switch in MANUAL)
    fills in the figures, and the technician who did it completes the task.
    """

    start: Literal["auto", "manual"]
    minutes: float = Field(5.0, gt=0, le=240, description="how long the pump must run")


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
    pump_kinds: tuple[str, ...] = Field((), description="scope pump: only these pump kinds; duty_group: "
                                                       "only groups of these kinds; tank: only tanks in "
                                                       "rooms with pumps of these kinds")
    assets: tuple[Identifier, ...] = Field((), description="scope pump, duty_group or tank: only these ids")
    schedule: Schedule | None = Field(None, description="required for a plan that is not built in")
    lead_hours: float = Field(0.0, ge=0, description="the task opens this long before it is due")
    priority: Priority = "normal"
    task_kind: Literal["plan", "inspection"] = "plan"
    checklist: tuple[ChecklistEntry, ...] = ()
    skip: tuple[Skip, ...] = ()
    reschedule: tuple[Reschedule, ...] = ()
    blackout: tuple[Blackout, ...] = ()
    test_run: PumpTestRun | None = Field(None, description="the tasks are pump test runs, recognised from "
                                                           "readings (scope pump)")

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        if self.action == "rotate" and self.scope is not Scope.DUTY_GROUP:
            raise ValueError("a rotation plan has scope duty_group")
        if isinstance(self.schedule, RunHours) and self.scope is not Scope.PUMP:
            raise ValueError("a run_hours schedule needs scope pump")
        if self.action == "rotate" and isinstance(self.schedule, RunHours | Yearly | EveryMonths):
            raise ValueError("a rotation runs on a calendar schedule (every_days, weekly, monthly)")
        if self.test_run is not None and (self.scope is not Scope.PUMP or self.action != "task"):
            raise ValueError("a test_run plan has scope pump and action task")
        keys = [item.key for item in self.checklist]
        if len(keys) != len(set(keys)):
            raise ValueError("checklist keys must be distinct")
        return self

    @property
    def title(self) -> Text:
        """The plan's name (complete plans always have one)."""
        assert self.name is not None, "an effective plan has a name"
        return self.name

    @property
    def unmissable(self) -> bool:
        """True for work due once or twice a year: a window missed for any reason is still created."""
        return isinstance(self.schedule, UNMISSABLE_SCHEDULES)


class GroupRotation(Model):
    """One duty group's rotation: switched on or off against the default, or on its own interval."""

    enabled: bool | None = Field(None, description="true/false: rotate or not, whatever the pumps' kind")
    every_days: int | None = Field(None, ge=1, le=366, description="rotate every this many days instead")


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
    groups: dict[Identifier, GroupRotation] = Field(
        default_factory=dict, description="duty group -> whether it rotates and how often (default: groups "
                                          "of the rotation plan's pump kinds, domestic, on its schedule)")


class PumpTestSettings(Model):
    """What a recognised test run of a fire or sprinkler pump must show in its readings."""

    start_seconds: float = Field(10.0, ge=0, le=600, description="the starting current of the first "
                                                                 "seconds is not judged")
    running_current: float = Field(0.1, gt=0, le=1, description="share of rated current that counts as "
                                                                "running where there is no run feedback")
    # A loaded motor draws well over its no-load current (25-40 % of rated for small induction motors) and
    # under its overload setting (GB 14048.4 / IEC 60947-4-1 relays hold at 105 %, trip by 120 %).
    current_range: tuple[float, float] = Field((0.35, 1.1), description="mean running current, shares of "
                                                                         "the pump's rated current")
    # A sanity floor, not a performance test (that is the quarterly flow and pressure test, 14.0.4 (5)): a
    # pump turning the right way with water in it builds up well over half its shut-off pressure.
    pressure_share: float = Field(0.5, gt=0, le=1, description="pressure to reach, a share of the pump's "
                                                               "shutoff_pressure (unless `pressure` says)")
    pressure: dict[Identifier, float] = Field(default_factory=dict, description="pump -> pressure (MPa) its "
                                                                                "test run must reach")

    @field_validator("current_range")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        low, high = v
        if not (math.isfinite(low) and math.isfinite(high) and 0 <= low < high):
            raise ValueError("current_range must be [low, high] shares with 0 <= low < high")
        return v

    @field_validator("pressure")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        for pump, mpa in v.items():
            if not (math.isfinite(mpa) and mpa > 0):
                raise ValueError(f"pressure of {pump!r} must be a positive number of MPa")
        return v


class PlanSettings(Model):
    """The plan table of a site: the regulation's plans (unless switched off) and the site's own."""

    regulation: bool = Field(True, description="include the built-in plans of the regulation")
    plans: tuple[Plan, ...] = ()
    rotation: RotationSettings = RotationSettings()
    test_runs: PumpTestSettings = PumpTestSettings()
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

# The items of a pump test run the readings can answer; `inspection.fire_test_runs` fills them in.
STARTED, RUN_MINUTES, RUNNING_CURRENT, PRESSURE_REACHED, SUPPLY_VOLTAGE, BACK_TO_AUTO = (
    "started", "run-minutes", "running-current", "pressure", "supply-voltage", "back-to-auto")


def _test_run_items(started: Text) -> tuple[ChecklistEntry, ...]:
    return (
        ChecklistEntry(key=STARTED, text=started),
        ChecklistEntry(key=RUN_MINUTES, type=ItemType.NUMBER, unit="min", expected=(5.0, 60.0),
                       text=_t("连续运行时间", "Time it ran without stopping")),
        ChecklistEntry(key=RUNNING_CURRENT, type=ItemType.NUMBER, unit="A", expected=(0.35, 1.1),
                       of_rated_current=True, sensor_kind="current", equipment_type="pump",
                       text=_t("运行电流（电流表读数）", "Running current (ammeter reading)")),
        ChecklistEntry(key=PRESSURE_REACHED, type=ItemType.NUMBER, unit="MPa", expected=(0.3, 2.0),
                       sensor_kind="pressure",
                       text=_t("运行时出水（管网）压力", "Outlet (main) pressure while it ran")),
        ChecklistEntry(key="no-abnormal", text=_t("运转平稳，无异常声响、振动或漏水",
                                                  "Runs smoothly: no odd noise, vibration or leak")),
    )


# GB 50974-2014, 14.0.4 (2): every week the fire pump is started once under simulated automatic-control
# conditions, and the run is recorded automatically.
WEEKLY_TEST_CHECKLIST: tuple[ChecklistEntry, ...] = (
    *_test_run_items(_t("模拟自动控制条件（试水阀泄压或控制柜自动巡检）下水泵自动启动",
                        "Pump started by itself under simulated automatic control (test valve opened or "
                        "the cabinet's automatic test)")),
    ChecklistEntry(key=BACK_TO_AUTO, sensor_kind="switch_position", equipment_type="pump",
                   text=_t("试验后控制柜转换开关在自动位", "Cabinet selector switch in AUTO after the test")),
)

# GB 50974-2014, 14.0.4 (1): every month the fire pump is started by hand once and its power supply checked;
# rule 8 of the regulation (the fire system's monthly inspection) is the same visit.
FIRE_CHECKLIST: tuple[ChecklistEntry, ...] = (
    *_test_run_items(_t("在控制柜手动启动水泵，启动正常", "Pump started by hand at the control cabinet, "
                                                         "started normally")),
    ChecklistEntry(key=SUPPLY_VOLTAGE, type=ItemType.NUMBER, unit="V", expected=(342.0, 418.0),
                   sensor_kind="voltage",
                   text=_t("供电电源检查：进线电压（主备电源切换正常）",
                           "Power supply check: incoming voltage (main/standby changeover works)")),
    ChecklistEntry(key=BACK_TO_AUTO, sensor_kind="switch_position", equipment_type="pump",
                   text=_t("试验后控制柜转换开关恢复自动位",
                           "Cabinet selector switch back in AUTO after the test")),
    ChecklistEntry(key="labels", text=_t("操作标识清晰", "Operating labels clear")),
    ChecklistEntry(key="signed", type=ItemType.SIGNATURE,
                   text=_t("按消防月检规定签名确认", "Signed as the fire system's monthly inspection")),
)

# GB 17051-1997 (二次供水设施卫生规范): the tanks of secondary water supply are cleaned and disinfected at
# least once a year, and the water tested; many cities require it every six months. The cleaners hold
# health certificates, and the water-quality report of a qualified laboratory is kept with the record.
TANK_CLEANING_CHECKLIST: tuple[ChecklistEntry, ...] = (
    ChecklistEntry(key="staff-health", text=_t("清洗人员持有效健康证明", "Cleaners hold valid health "
                                                                      "certificates")),
    ChecklistEntry(key="drained-cleaned", text=_t("水箱已排空，内壁及箱底清洗干净，无沉积物",
                                                 "Tank drained; walls and floor cleaned, no sediment left")),
    ChecklistEntry(key="disinfected", text=_t("已按规定浓度消毒，并冲洗干净",
                                             "Disinfected at the specified strength, then rinsed")),
    ChecklistEntry(key="covers-screens", text=_t("人孔盖板已加锁，通气管、溢流管防虫网完好",
                                                "Manhole cover locked; insect screens on vent and overflow "
                                                "intact")),
    ChecklistEntry(key="photo", type=ItemType.PHOTO, text=_t("清洗前后拍照", "Photos before and after")),
    ChecklistEntry(key="water-quality-report", type=ItemType.DOCUMENT, attachment="required",
                   text=_t("上传有资质机构出具的水质检测报告", "Upload the water-quality test report of a "
                                                              "qualified laboratory")),
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
    # Rule 4 swaps domestic pumps; fire and sprinkler pumps get test runs instead (a group of any kind can
    # be switched on or off, or given its own interval, under plans.rotation.groups).
    Plan(id="duty-rotation", action="rotate", scope=Scope.DUTY_GROUP, pump_kinds=("domestic",),
         priority="normal",
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
    # A week-long window, each opening when the last closes: whenever in the week the controller's
    # automatic test or a technician runs the pump, there is a task for it.
    Plan(id="fire-weekly-test", scope=Scope.PUMP, pump_kinds=("fire", "sprinkler"), lead_hours=7 * 24.0,
         priority="high", name=_t("消防泵、喷淋泵每周自动启动试验", "Weekly automatic start test of fire and "
                                                                 "sprinkler pumps"),
         description=_t("模拟自动控制条件启动水泵运转一次（GB 50974-2014 第14.0.4条）；有运行信号的泵由系统"
                        "根据读数自动记录，待主管核验",
                        "Start the pump once under simulated automatic control (GB 50974-2014, 14.0.4); "
                        "for instrumented pumps the system records the run from readings, for the supervisor "
                        "to verify"),
         schedule=Weekly(type="weekly", weekday=Weekday.FRIDAY, at=time(17, 0)),
         checklist=WEEKLY_TEST_CHECKLIST, test_run=PumpTestRun(start="auto", minutes=5.0)),
    Plan(id="fire-monthly", scope=Scope.PUMP, pump_kinds=("fire", "sprinkler"), lead_hours=5 * 24.0,
         priority="high", name=_t("消防泵、喷淋泵月检（手动启动试验）",
                                  "Monthly fire and sprinkler pump inspection (manual start test)"),
         description=_t("手动启动水泵运转一次并检查供电电源（GB 50974-2014 第14.0.4条）；读数由系统填入",
                        "Start the pump by hand once and check its power supply (GB 50974-2014, 14.0.4); "
                        "the system fills in the readings"),
         schedule=Monthly(type="monthly", day=10, at=time(17, 0)), checklist=FIRE_CHECKLIST,
         test_run=PumpTestRun(start="manual", minutes=5.0)),
    Plan(id="pipe-anti-rust", scope=Scope.ROOM,
         name=_t("管道年度防锈处理", "Annual pipe anti-rust treatment"),
         schedule=Yearly(type="yearly", opens="12-01", due="01-31", at=time(17, 0)),
         checklist=ANTI_RUST_CHECKLIST),
    Plan(id="tank-cleaning", scope=Scope.TANK, pump_kinds=("domestic",), lead_hours=30 * 24.0,
         priority="high", name=_t("生活水箱清洗消毒", "Domestic water tank cleaning and disinfection"),
         description=_t("二次供水水箱清洗消毒并送检水质（GB 17051）", "Clean and disinfect the secondary "
                                                               "water supply tank, and have the water tested "
                                                               "(GB 17051)"),
         schedule=EveryMonths(type="every_months", months=6, anchor=date(2026, 4, 15), at=time(17, 0)),
         checklist=TANK_CLEANING_CHECKLIST),
    Plan(id="bearing-lubrication", scope=Scope.PUMP,
         name=_t("轴承润滑", "Bearing lubrication"),
         schedule=RunHours(type="run_hours", every_hours=2000.0, lead_hours=50.0, due_days=14.0),
         checklist=LUBRICATION_CHECKLIST),
)

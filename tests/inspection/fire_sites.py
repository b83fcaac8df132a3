"""A site for the plan tests of issue 13: a domestic room and a fire room with a sprinkler duty group."""

from __future__ import annotations

from typing import Any

import yaml

from pumpwatch.site import Site
from pumpwatch.sitefile import parse_site


def fire_site_data(plans: dict[str, Any] | None = None, instrumented: bool = True,
                   timezone: str = "Asia/Shanghai") -> dict[str, Any]:
    """The site as data: `dom` (two domestic pumps in `dom-grp`, break tank `dom-tank`, header pressure)
    and `fire` (fire pump `fp`; sprinkler pumps `sp1`, `sp2` in duty group `spr`; the sprinkler main's
    pressure; the fire water tank `fire-tank`; the cabinet's supply voltage). `instrumented` False leaves
    the fire and sprinkler pumps without any sensor."""
    points: list[dict[str, Any]] = []

    def sensor(sid: str, kind: str) -> dict[str, Any]:
        table = "discrete" if kind == "run_status" else "input"
        points.append({"sensor": sid, "table": table, "address": len(points),
                       **({"type": "bit"} if table == "discrete" else {})})
        return {"id": sid, "kind": kind, "source": "modbus"}

    def pump(pid: str, kind: str, rated: float, group: str | None, *kinds: str) -> dict[str, Any]:
        out: dict[str, Any] = {"id": pid, "type": "pump", "kind": kind, "rated_current": rated,
                               "shutoff_pressure": 1.1, "name": {"zh": f"{pid}泵", "en": f"Pump {pid}"},
                               "sensors": [sensor(f"{pid}-{k.replace('_', '-')}", k) for k in kinds]}
        if group is not None:
            out["duty_group"] = group
        return out

    dom = [pump("d1", "domestic", 10.0, "dom-grp", "current", "run_status"),
           pump("d2", "domestic", 10.0, "dom-grp", "current", "run_status"),
           {"id": "dom-tank", "type": "tank", "name": {"zh": "生活水箱", "en": "Break tank"},
            "sensors": [sensor("dom-tank-level", "level")]},
           {"id": "dom-header", "type": "header", "sensors": [sensor("dom-pressure", "pressure")]}]
    fire_kinds = ("current", "run_status", "switch_position") if instrumented else ()
    fire = [pump("fp", "fire", 50.0, None, *fire_kinds),
            pump("sp1", "sprinkler", 8.0, "spr", *fire_kinds[:2]),
            pump("sp2", "sprinkler", 8.0, "spr", *fire_kinds[:2]),
            {"id": "fire-tank", "type": "tank", "name": {"zh": "消防水池", "en": "Fire water tank"}},
            {"id": "main", "type": "header", "sensors": [sensor("main-pressure", "pressure")]},
            {"id": "fire-cab", "type": "cabinet", "sensors": [sensor("fire-voltage", "voltage")]}]
    data: dict[str, Any] = {
        "site": {"id": "t13", "name": {"zh": "测试", "en": "Test"}, "timezone": timezone},
        "rooms": [{"id": "dom", "name": {"zh": "生活泵房", "en": "Domestic room"}, "equipment": dom,
                   "duty_groups": [{"id": "dom-grp", "pumps": ["d1", "d2"]}]},
                  {"id": "fire", "name": {"zh": "消防泵房", "en": "Fire room"}, "equipment": fire,
                   "duty_groups": [{"id": "spr", "pumps": ["sp1", "sp2"],
                                    "control": {"start_pressure": 0.65, "stop_pressure": 0.80}}]}],
        "modbus": [{"id": "plc", "port": 5020, "points": points}],
    }
    if plans is not None:
        data["plans"] = plans
    return data


def fire_site(plans: dict[str, Any] | None = None, instrumented: bool = True,
              timezone: str = "Asia/Shanghai") -> Site:
    """The site of `fire_site_data`, validated like a site file."""
    return parse_site(site_yaml(fire_site_data(plans, instrumented, timezone)), "fire-site.yaml")


def site_yaml(data: dict[str, Any]) -> str:
    """Site data as the YAML text of a site file."""
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)

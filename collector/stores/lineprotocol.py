"""InfluxDB line protocol and InfluxQL quoting: the only place names meet the wire format."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pumpwatch.catalog import SensorInfo
from pumpwatch.portfolio import split_key
from pumpwatch.readings import Quality, Reading

MEASUREMENT = "reading"

# InfluxDB 1.x reads a backslash literally unless it precedes one of these; newlines cannot be tags.
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_QUALITY_FIELD = {q: f"{int(q)}i" for q in Quality}  # formatting an IntEnum goes through enum machinery
_STRING_FIELD_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\"})


def escape_tag(text: str) -> str:
    """Escape a tag key or value (commas, equals signs, spaces, backslashes)."""
    return text.translate(_TAG_ESCAPES)


def series_key(sensor: str, info: SensorInfo | None) -> str:
    """`reading,equipment=..,estate=..,kind=..,room=..,sensor=..,site=..` with tags in key order.

    `sensor` is a sensor key (`<estate>/<sensor>`) or a sensor id: the `sensor` tag is the id, the
    `estate` tag the estate (`site` holds the same id, as points from before estates had it).
    """
    estate, own = split_key(sensor)
    tags = {"sensor": own, "estate": estate}
    if info is not None:
        tags.update(estate=info.site, site=info.site, room=info.room, equipment=info.equipment,
                    kind=str(info.kind))
    return MEASUREMENT + "".join(f",{key}={escape_tag(value)}" for key, value in sorted(tags.items())
                                 if value)


def lines(readings: Iterable[Reading], key_of: Callable[[str], str]) -> str:
    """Points, one per line: value (float), quality (integer), state (string, for state sensors).

    `key_of` gives a sensor's series key (cached by the caller); this loop runs once per reading.
    """
    out: list[str] = []
    append = out.append
    field = _QUALITY_FIELD
    for sensor, ts, value, quality, state in readings:
        # int(x + 0.5), not round(x): half the time of the loop; the same nanoseconds for every epoch
        # time after 1970-04 (ts * 1e9 is a whole float there), and the same on every retry
        if state is None:
            append(f"{key_of(sensor)} value={value!r},quality={field[quality]} {int(ts * 1e9 + 0.5)}")
        else:
            append(f"{key_of(sensor)} value={value!r},quality={field[quality]},"
                   f'state="{state.translate(_STRING_FIELD_ESCAPES)}" {int(ts * 1e9 + 0.5)}')
    return "\n".join(out)


def quote_identifier(name: str) -> str:
    """An InfluxQL identifier in double quotes (database, retention policy)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quality_of(value: object) -> Quality:
    """Stored quality back to the enum (unknown codes read as device errors)."""
    try:
        return Quality(int(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return Quality.DEVICE_ERROR

"""Signed messages between processes: what the verifier takes and what it refuses, and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.portfolio import Portfolio
from pumpwatch.readings import Quality, Reading
from pumpwatch.settings import Settings, SigningSettings
from pumpwatch.signing import (
    RESERVE_US,
    ReplayGuard,
    Sequences,
    Signer,
    Verifier,
    edge_verifier,
    feed_verifier,
    load_key,
    load_keyring,
)
from pumpwatch.site import Severity, Text
from pumpwatch.sitefile import load_site
from pumpwatch.wire import ALARM_STREAM, LIVE_STREAM, Refusal, Refused, SiteAssets

KEY_A = b"a" * 64
KEY_B = b"b" * 64
TOPIC = "pumpwatch/alarms/dom/dom-p1/leak"


class Clock:
    """A settable wall clock (seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def signer(kid: str = "collector-a", key: bytes = KEY_A, clock: Clock | None = None,
           path: Path | None = None) -> Signer:
    return Signer(kid, key, Sequences(path, clock or Clock(1_800_000_000.0)))


def verifier(clock: Clock | None = None, guard: ReplayGuard | None = None,
             keys: dict[str, bytes] | None = None) -> Verifier:
    return Verifier(keys or {"collector-a": KEY_A}, guard or ReplayGuard(),
                    max_age={ALARM_STREAM: 86400, LIVE_STREAM: 120}, clock=clock or Clock(1_800_000_000.0))


def refusal(check: Verifier, topic: str, payload: bytes, stream: str = ALARM_STREAM) -> Refusal:
    with pytest.raises(Refused) as caught:
        check.open(topic, payload, stream)
    return caught.value.reason


def test_a_signed_message_opens_to_its_payload_and_sender() -> None:
    sealed = signer().seal(TOPIC, b'{"action": "raised"}', ALARM_STREAM)
    assert sealed.startswith(b"PWS1 collector-a ")
    opened = verifier().open(TOPIC, sealed, ALARM_STREAM)
    assert opened.body == b'{"action": "raised"}'
    assert opened.kid == "collector-a"


def test_unsigned_tampered_and_moved_messages_are_forged() -> None:
    check = verifier()
    assert refusal(check, TOPIC, b'{"action": "raised"}') is Refusal.FORGED
    sealed = signer().seal(TOPIC, b'{"action": "raised"}', ALARM_STREAM)
    assert refusal(check, TOPIC, sealed.replace(b"raised", b"cleared")) is Refusal.FORGED
    assert refusal(check, "pumpwatch/alarms/fire/fire-p1/leak", sealed) is Refusal.FORGED
    head, _nl, body = sealed.partition(b"\n")
    renumbered = head.replace(head.split(b" ")[2], b"1") + b"\n" + body
    assert refusal(check, TOPIC, renumbered) is Refusal.FORGED
    assert refusal(check, TOPIC, b"PWS1 collector-a 12 short\n{}") is Refusal.FORGED


def test_a_key_the_receiver_does_not_trust_is_unknown() -> None:
    sealed = signer("rogue", KEY_B).seal(TOPIC, b"{}", ALARM_STREAM)
    assert refusal(verifier(), TOPIC, sealed) is Refusal.UNKNOWN_KEY


def test_a_trusted_key_speaking_for_another_sender_is_forged() -> None:
    check = verifier(keys={"e1": KEY_A, "e2": KEY_B})
    sealed = signer("e2", KEY_B).seal("pumpwatch/edge/e1/alarm", b"{}", "edge-alarm")
    with pytest.raises(Refused) as caught:
        check.open("pumpwatch/edge/e1/alarm", sealed, "edge-alarm", sender="e1")
    assert caught.value.reason is Refusal.FORGED


def test_a_message_taken_once_is_refused_as_replayed_and_others_still_pass() -> None:
    check = verifier()
    send = signer()
    first, second = send.seal(TOPIC, b"1", ALARM_STREAM), send.seal(TOPIC, b"2", ALARM_STREAM)
    check.open(TOPIC, second, ALARM_STREAM).record()
    check.open(TOPIC, first, ALARM_STREAM).record()  # crossed on the way: still new
    assert refusal(check, TOPIC, first) is Refusal.REPLAYED
    assert refusal(check, TOPIC, second) is Refusal.REPLAYED
    check.open(TOPIC, send.seal(TOPIC, b"3", ALARM_STREAM), ALARM_STREAM).record()


def test_an_unrecorded_message_is_not_yet_a_replay() -> None:
    check, sealed = verifier(), signer().seal(TOPIC, b"1", ALARM_STREAM)
    check.open(TOPIC, sealed, ALARM_STREAM)  # refused later for another reason: not recorded
    check.open(TOPIC, sealed, ALARM_STREAM).record()


def test_messages_older_than_their_stream_allows_are_replayed() -> None:
    clock = Clock(1_800_000_000.0)
    check = verifier(clock)
    live = signer(clock=Clock(clock.now - 121)).seal("pumpwatch/live/dom", b"[]", LIVE_STREAM)
    assert refusal(check, "pumpwatch/live/dom", live, LIVE_STREAM) is Refusal.REPLAYED
    queued = signer(clock=Clock(clock.now - 3600)).seal(TOPIC, b"{}", ALARM_STREAM)
    check.open(TOPIC, queued, ALARM_STREAM)  # an alarm event queued an hour at the broker is fine


def test_the_marks_of_durable_streams_survive_a_restart(tmp_path: Path) -> None:
    marks = tmp_path / "marks.db"
    sealed = signer().seal(TOPIC, b"{}", ALARM_STREAM)
    live = signer().seal("pumpwatch/live/dom", b"[]", LIVE_STREAM)
    before = ReplayGuard(marks, durable=[ALARM_STREAM])
    check = verifier(guard=before)
    check.open(TOPIC, sealed, ALARM_STREAM).record()
    check.open("pumpwatch/live/dom", live, LIVE_STREAM).record()
    before.close()
    after = verifier(guard=ReplayGuard(marks, durable=[ALARM_STREAM]))
    assert refusal(after, TOPIC, sealed) is Refusal.REPLAYED
    after.open("pumpwatch/live/dom", live, LIVE_STREAM)  # live marks are memory only (their age limits them)


def test_sequences_keep_growing_across_a_restart_with_the_clock_set_back(tmp_path: Path) -> None:
    path = tmp_path / "seq.json"
    clock = Clock(1_800_000_000.0)
    first = Sequences(path, clock)
    numbers = [first.next(ALARM_STREAM) for _ in range(3)]
    assert numbers == sorted(set(numbers))
    assert json.loads(path.read_text())[ALARM_STREAM] == numbers[0] + RESERVE_US
    clock.now -= 3600  # the clock stepped back while the process was down
    again = Sequences(path, clock)
    assert again.next(ALARM_STREAM) > numbers[-1]
    assert again.next(LIVE_STREAM) == int(clock.now * 1_000_000)  # streams are apart


def test_without_keys_messages_are_taken_as_they_come() -> None:
    relaxed = Verifier({})
    assert not relaxed.required
    assert relaxed.open(TOPIC, b"{}", ALARM_STREAM).body == b"{}"
    assert relaxed.open(TOPIC, signer().seal(TOPIC, b"{}", ALARM_STREAM), ALARM_STREAM).body == b"{}"


def test_keys_come_from_files_and_short_ones_are_refused(tmp_path: Path) -> None:
    (tmp_path / "collector-a.key").write_text("0123456789abcdef" * 4 + "\n")
    (tmp_path / "e1.key").write_text("f" * 40)
    (tmp_path / "notes.txt").write_text("not a key")
    assert set(load_keyring(tmp_path)) == {"collector-a", "e1"}
    assert set(load_keyring(tmp_path, leave_out=["e1"])) == {"collector-a"}
    assert set(load_keyring(tmp_path, only=["e1"])) == {"e1"}
    assert load_key(tmp_path / "collector-a.key") == ("0123456789abcdef" * 4).encode()
    (tmp_path / "short.key").write_text("secret")
    with pytest.raises(ValueError, match="at least 32"):
        load_keyring(tmp_path)


def test_an_event_or_reading_about_what_the_site_has_not_is_an_unknown_asset() -> None:
    assets = SiteAssets(load_site(Path(__file__).resolve().parents[2] / "examples" / "site.yaml"))

    def event(asset: str, room: str, estate: str = "harbour-view") -> AlarmEvent:
        return AlarmEvent(AlarmAction.RAISED, AlarmKey(asset, "leak", estate), Severity.CRITICAL, 0.0, room,
                          Text(zh="漏水", en="leak"))

    for asset, room in (("fire-p1", "fire"), ("dom", "dom"), ("dom-duty", "dom"), ("plc-dom", "dom"),
                        ("dom-floor-leak", "dom")):  # pump, room, duty group, PLC, sensor
        assets.check_event(event(asset, room))
    for asset, room in (("fire-p1", "ghost-room"), ("fire-p1", "dom"), ("ghost-pump", "dom")):
        with pytest.raises(Refused) as caught:
            assets.check_event(event(asset, room))
        assert caught.value.reason is Refusal.UNKNOWN_ASSET
    with pytest.raises(Refused, match="no estate 'elsewhere'") as caught:
        assets.check_event(event("fire-p1", "fire", estate="elsewhere"))  # its asset, another estate
    assert caught.value.reason is Refusal.UNKNOWN_ASSET
    assets.check_readings("harbour-view", "dom", [Reading("dom-header-pressure", 0.0, 0.4, Quality.GOOD)])
    with pytest.raises(Refused):
        assets.check_readings("harbour-view", "dom", [Reading("fire-main-pressure", 0.0, 0.4, Quality.GOOD)])
    with pytest.raises(Refused):
        assets.check_readings("elsewhere", "dom", [Reading("dom-header-pressure", 0.0, 0.4, Quality.GOOD)])
    # By key as well (the feed decodes them so), of this estate only
    assets.check_readings("harbour-view", "dom", [Reading("harbour-view/dom-header-pressure", 0.0, 0.4)])
    for key in ("harbour-view/fire-main-pressure", "elsewhere/dom-header-pressure"):
        with pytest.raises(Refused):
            assets.check_readings("harbour-view", "dom", [Reading(key, 0.0, 0.4)])


def test_the_assets_and_keys_of_two_estates_with_the_same_ids_are_told_apart(tmp_path: Path) -> None:
    site = load_site(Path(__file__).resolve().parents[2] / "examples" / "edge-site.yaml")
    twin = site.model_copy(update={
        "site": site.site.model_copy(update={"id": "twin"}),
        "edges": tuple(e.model_copy(update={"id": f"twin-{e.id}", "username": f"twin-{e.username}"})
                       for e in site.edges)})
    portfolio = Portfolio.of(site, twin)
    assets = SiteAssets(portfolio)
    room = site.rooms[0].id
    for estate in ("edge-example", "twin"):
        assets.check_event(AlarmEvent(AlarmAction.RAISED, AlarmKey(room, "leak", estate), Severity.CRITICAL,
                                      0.0, room, Text(zh="漏水", en="leak")))
    with pytest.raises(Refused, match="no estate 'other'"):
        assets.check_event(AlarmEvent(AlarmAction.RAISED, AlarmKey(room, "leak", "other"), Severity.CRITICAL,
                                      0.0, room, Text(zh="漏水", en="leak")))
    keys = tmp_path / "keys"
    keys.mkdir()
    for kid in ("collector-a", *(e.id for e in site.edges), *(e.id for e in twin.edges)):
        (keys / f"{kid}.key").write_text(kid + "-" + "k" * 40, encoding="utf-8")
    settings = Settings(signing=SigningSettings(trusted_dir=keys))
    assert set(feed_verifier(settings, portfolio, None).keys) == {"collector-a"}  # no edge of either estate
    assert set(edge_verifier(settings, portfolio, None).keys) == {e.id for e in (*site.edges, *twin.edges)}

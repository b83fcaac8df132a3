"""The collector's own MQTT session: packets cut right from any split, QoS 1 redelivery, TLS and logins."""

from __future__ import annotations

import itertools
import logging
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.pipeline.sink import OnDurable
from pumpwatch.broker_acl import password_hash
from pumpwatch.clock import SystemClock
from pumpwatch.mqtt_session import (
    Message,
    MqttSession,
    PacketReader,
    ProtocolError,
    _packet,
    pubacks,
)
from pumpwatch.mqttclient import new_client, start_client, stop_client
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.readings import Reading
from pumpwatch.sitefile import parse_site
from tests.support.mqtt import publish_one
from tests.support.services import HOST, Mosquitto


def publish_packet(topic: str, payload: bytes, qos: int, mid: int, dup: bool = False) -> bytes:
    """A PUBLISH as a broker sends it."""
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name + (mid.to_bytes(2, "big") if qos else b"") + payload
    return _packet(0x30 | (0x08 if dup else 0) | (qos << 1), body)


published = st.lists(st.tuples(st.text(min_size=1, max_size=30), st.binary(max_size=400),
                               st.sampled_from([0, 1]), st.integers(1, 0xFFFF), st.booleans()),
                     min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(messages=published, cuts=st.lists(st.integers(0, 6000), max_size=10))
def test_packets_split_anywhere_across_reads_come_out_whole_and_in_order(
        messages: list[tuple[str, bytes, int, int, bool]], cuts: list[int]) -> None:
    stream = b"".join(publish_packet(*m) for m in messages) + b"\xd0\x00"  # and a PINGRESP
    reader = PacketReader()
    got: list[Message] = []
    others: list[int] = []
    edges = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    for start, end in itertools.pairwise(edges):
        out, rest = reader.feed(stream[start:end], 7)
        got += out
        others += [kind for kind, _body in rest]
    assert [(m.topic, m.payload, m.qos, m.mid if m.qos else 0, m.dup, m.connection) for m in got] == [
        (t, p, q, mid if q else 0, dup, 7) for t, p, q, mid, dup in messages]
    assert others == [13]
    assert reader.buffer == bytearray()


@pytest.mark.parametrize("size", [0, 127, 128, 16_383, 16_384, 2_097_151 - 8])
def test_remaining_lengths_of_one_to_four_bytes(size: int) -> None:
    packet = publish_packet("t", b"x" * size, 1, 5)
    reader = PacketReader()
    messages, _ = reader.feed(packet[:3], 1)
    assert messages == []
    messages, _ = reader.feed(packet[3:], 1)
    assert len(messages) == 1
    assert len(messages[0].payload) == size


def test_a_length_of_five_bytes_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        PacketReader().feed(b"\x30\xff\xff\xff\xff\x01", 1)


def test_pubacks_of_a_commit_are_one_buffer() -> None:
    assert pubacks([1, 258, 65535]) == b"\x40\x02\x00\x01" + b"\x40\x02\x01\x02" + b"\x40\x02\xff\xff"


class Inbox:
    """What a session hands over, waited for from the test's thread."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.states: list[bool] = []
        self.cond = threading.Condition()

    def take(self, messages: list[Message]) -> None:
        with self.cond:
            self.messages += messages
            self.cond.notify_all()

    def state(self, up: bool) -> None:
        with self.cond:
            self.states.append(up)
            self.cond.notify_all()

    def wait(self, what: str, predicate: object, within: float = 10.0) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, within), f"timed out waiting for {what}"  # type: ignore[arg-type]


def session(broker: BrokerAddress, client_id: str, topic: str, inbox: Inbox) -> MqttSession:
    return MqttSession(broker, client_id, [topic], on_messages=inbox.take, on_state=inbox.state, keepalive=5)


def test_unacknowledged_messages_come_again_marked_dup_and_acknowledged_ones_do_not(
        mosquitto: Mosquitto, unique_topic: str) -> None:
    broker = BrokerAddress(HOST, mosquitto.port)
    client_id = f"session-{uuid.uuid4().hex[:8]}"
    first_inbox = Inbox()
    first = session(broker, client_id, f"{unique_topic}/+", first_inbox)
    first.start()
    try:
        first_inbox.wait("connect", lambda: first_inbox.states == [True])
        for n in range(3):
            publish_one(mosquitto.port, f"{unique_topic}/d{n}", str(n))
        first_inbox.wait("three messages", lambda: len(first_inbox.messages) == 3)
        kept = first_inbox.messages
        assert [m.payload for m in kept] == [b"0", b"1", b"2"]
        assert all(m.qos == 1 for m in kept)
        first.ack(kept[0].connection, [kept[0].mid])  # only the first is on disk
        first.ack(kept[0].connection + 1, [kept[1].mid])  # a connection that is not this one: dropped
    finally:
        first.stop()
    assert first_inbox.states == [True, False]

    second_inbox = Inbox()
    second = session(broker, client_id, f"{unique_topic}/+", second_inbox)
    second.start()
    try:
        second_inbox.wait("the two unacknowledged", lambda: len(second_inbox.messages) >= 2)
        again = second_inbox.messages
        assert [(m.payload, m.dup) for m in again] == [(b"1", True), (b"2", True)]
        second.ack(again[0].connection, [m.mid for m in again])
        publish_one(mosquitto.port, f"{unique_topic}/d9", "9")
        second_inbox.wait("a new message", lambda: len(second_inbox.messages) == 3)
        assert second_inbox.messages[2].payload == b"9"
        assert not second_inbox.messages[2].dup
        second.ack(again[0].connection, [second_inbox.messages[2].mid])
    finally:
        second.stop()

    third_inbox = Inbox()
    third = session(broker, client_id, f"{unique_topic}/+", third_inbox)
    third.start()
    try:
        third_inbox.wait("connect", lambda: third_inbox.states == [True])
        publish_one(mosquitto.port, f"{unique_topic}/d10", "10")  # behind anything still queued
        third_inbox.wait("the marker", lambda: any(m.payload == b"10" for m in third_inbox.messages))
        assert [m.payload for m in third_inbox.messages] == [b"10"]  # nothing acknowledged came again
        third.ack(third_inbox.messages[0].connection, [third_inbox.messages[0].mid])
    finally:
        third.stop()


def test_messages_come_as_published_while_their_acknowledgements_wait(
        mosquitto: Mosquitto, unique_topic: str) -> None:
    """The broker's Nagle waits for our TCP ACK; we ACK each read at once, not with the next PUBACK.

    Mosquitto sets no TCP_NODELAY by default: a message it sends waits until the one before it is
    ACKed by our kernel, which, once the connection goes both ways, delays that ACK until data of ours
    can carry it. With PUBACKs sent every 30 ms (a commit window), messages 10 ms apart then arrived
    one read per PUBACK.
    """
    broker = BrokerAddress(HOST, mosquitto.port)
    inbox = Inbox()
    reads: list[int] = []
    stop = threading.Event()

    def take(messages: list[Message]) -> None:
        reads.append(len(messages))
        inbox.take(messages)

    subscriber = MqttSession(broker, f"session-{uuid.uuid4().hex[:8]}", [f"{unique_topic}/+"],
                             on_messages=take, on_state=inbox.state, keepalive=5, clean=True)

    def commits() -> None:  # acknowledges what came, every 30 ms
        acked = 0
        while not stop.wait(0.03):
            with inbox.cond:
                came = inbox.messages[acked:]
            if came:
                subscriber.ack(came[0].connection, [m.mid for m in came])
                acked += len(came)

    publisher = new_client(broker, f"pub-{uuid.uuid4().hex[:8]}")
    committer = threading.Thread(target=commits, daemon=True)
    subscriber.start()
    start_client(publisher, broker)
    try:
        inbox.wait("connect", lambda: inbox.states == [True])
        committer.start()
        for n in range(60):
            publisher.publish(f"{unique_topic}/d", bytes([n]) * 1000, qos=1)
            time.sleep(0.01)
        inbox.wait("sixty messages", lambda: len(inbox.messages) == 60)
        assert [m.payload[0] for m in inbox.messages] == list(range(60))
        assert len(reads) >= 45, reads  # each message on its own read, give or take a hiccup
    finally:
        stop.set()
        committer.join(5)
        stop_client(publisher)
        subscriber.stop()


def test_subscribe_and_unsubscribe_while_connected(mosquitto: Mosquitto, unique_topic: str) -> None:
    inbox = Inbox()
    live = session(BrokerAddress(HOST, mosquitto.port), f"session-{uuid.uuid4().hex[:8]}",
                   f"{unique_topic}/a", inbox)
    live.start()
    try:
        inbox.wait("connect", lambda: inbox.states == [True])
        live.unsubscribe([f"{unique_topic}/a"])
        live.subscribe([f"{unique_topic}/b"])  # sent after the UNSUBSCRIBE, on the same connection
        assert live.subscriptions == [f"{unique_topic}/b"]
        for _ in range(20):  # until the broker has taken the SUBSCRIBE (and so the UNSUBSCRIBE before it)
            publish_one(mosquitto.port, f"{unique_topic}/b", "probe")
            with inbox.cond:
                if inbox.cond.wait_for(lambda: bool(inbox.messages), 0.5):
                    break
        publish_one(mosquitto.port, f"{unique_topic}/a", "a")
        publish_one(mosquitto.port, f"{unique_topic}/b", "last")
        inbox.wait("the last message on b", lambda: any(m.payload == b"last" for m in inbox.messages))
        assert {m.payload for m in inbox.messages} == {b"probe", b"last"}  # nothing from a
        live.ack(inbox.messages[0].connection, [m.mid for m in inbox.messages])
    finally:
        live.stop()


def test_a_paused_session_reads_nothing_yet_keeps_its_connection_past_the_keepalive(
        mosquitto: Mosquitto, unique_topic: str) -> None:
    inbox = Inbox()
    room = threading.Event()  # the intake's `has_room`: full at first
    live = MqttSession(BrokerAddress(HOST, mosquitto.port), f"session-{uuid.uuid4().hex[:8]}",
                       [f"{unique_topic}/+"], on_messages=inbox.take, on_state=inbox.state, keepalive=2,
                       can_take=room.is_set)
    live.start()
    try:
        inbox.wait("connect", lambda: inbox.states == [True])
        time.sleep(0.5)  # the SUBSCRIBE went with the CONNECT; let the broker take it
        for n in range(3):
            publish_one(mosquitto.port, f"{unique_topic}/x", str(n))
        # Longer than one and a half keepalives: a client the broker does not hear from is dropped then.
        time.sleep(4)
        with inbox.cond:
            assert inbox.messages == []  # nothing read while paused
            assert inbox.states == [True]  # and the broker kept the connection
        room.set()
        inbox.wait("the messages once there is room", lambda: len(inbox.messages) == 3)
        assert [m.payload for m in inbox.messages] == [b"0", b"1", b"2"]
        assert inbox.states == [True]
        live.ack(inbox.messages[0].connection, [m.mid for m in inbox.messages])
    finally:
        live.stop()


def test_the_session_reconnects_after_the_broker_restarts(unique_topic: str) -> None:
    with Mosquitto() as broker:
        inbox = Inbox()
        live = session(BrokerAddress(HOST, broker.port), f"session-{uuid.uuid4().hex[:8]}",
                       f"{unique_topic}/+", inbox)
        live.start()
        try:
            inbox.wait("connect", lambda: inbox.states == [True])
            broker.restart()
            inbox.wait("reconnect", lambda: inbox.states == [True, False, True], within=30)
            publish_one(broker.port, f"{unique_topic}/x", "after")  # the session was subscribed again
            inbox.wait("a message after the restart", lambda: len(inbox.messages) == 1)
            assert inbox.messages[0].connection == live.connection == 2
        finally:
            live.stop()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_login_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mosquitto, Path]]:
    """A Mosquitto speaking TLS only, with a certificate for 127.0.0.1 from its own CA, and one login."""
    d = tmp_path_factory.mktemp("session-tls")
    d.chmod(0o755)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Session test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={HOST}", "-keyout", "broker.key",
             "-out", "broker.csr", cwd=d)
    (d / "san.cnf").write_text(f"subjectAltName=IP:{HOST}\n")
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.cnf", "-out", "broker.pem", cwd=d)
    (d / "passwd").write_text(f"collector:{password_hash('collector-pw')}\n")
    for path in d.iterdir():
        path.chmod(0o644)
    with Mosquitto(tls=(d / "broker.pem", d / "broker.key"), password_file=d / "passwd") as broker:
        yield broker, d / "ca.pem"


def test_over_tls_with_a_login_and_a_wrong_password_refused(
        tls_login_broker: tuple[Mosquitto, Path], unique_topic: str,
        caplog: pytest.LogCaptureFixture) -> None:
    broker, ca = tls_login_broker
    good = BrokerAddress(HOST, broker.port, "collector", "collector-pw", tls=True, ca_file=str(ca))
    inbox = Inbox()
    live = session(good, f"session-{uuid.uuid4().hex[:8]}", f"{unique_topic}/+", inbox)
    live.start()
    try:
        inbox.wait("connect", lambda: inbox.states == [True])
        sender = new_client(good, f"sender-{uuid.uuid4().hex[:8]}")
        sender_up = threading.Event()
        sender.on_connect = lambda *_args: sender_up.set()
        start_client(sender, good)
        try:
            assert sender_up.wait(10), "the paho sender did not connect over TLS"
            for _ in range(20):  # the first may go before the broker has taken the SUBSCRIBE
                sender.publish(f"{unique_topic}/t", "over TLS", qos=1).wait_for_publish(10)
                with inbox.cond:
                    if inbox.cond.wait_for(lambda: bool(inbox.messages), 0.5):
                        break
        finally:
            stop_client(sender)
        assert inbox.messages[0].payload == b"over TLS"
        live.ack(inbox.messages[0].connection, [m.mid for m in inbox.messages])
    finally:
        live.stop()

    wrong = BrokerAddress(HOST, broker.port, "collector", "not-the-password", tls=True, ca_file=str(ca))
    refused = Inbox()
    denied = session(wrong, f"session-{uuid.uuid4().hex[:8]}", f"{unique_topic}/+", refused)
    caplog.set_level(logging.WARNING, logger="pumpwatch.mqtt_session")
    denied.start()
    try:
        for _ in range(200):
            if any("connection refused" in r.getMessage() for r in caplog.records):
                break
            time.sleep(0.05)
    finally:
        denied.stop()
    assert any("connection refused: not authorised" in r.getMessage() or "bad user name or password"
               in r.getMessage() for r in caplog.records)
    assert refused.states == []  # never took itself for connected


SEQ_SITE = """
site: {id: seqs, name: {zh: 计数, en: Counting}}
rooms:
  - id: r1
    name: {zh: 一号泵房, en: Room 1}
    sensors:
      - {id: seq, kind: flow, range: [0, 100000000], source: mqtt}
mqtt:
  - topic: "%s/{sensor}"
    format: number
    values: [{sensor: "{sensor}"}]
"""


class MessageBySink:
    """A sink of single messages (no `accept_messages`): stores, then acknowledges at once."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.keys: list[str | None] = []
        self.cond = threading.Condition()

    def accept(self, readings: Sequence[Reading], source: str, on_durable: OnDurable | None = None,
               key: str | None = None) -> None:
        with self.cond:
            self.values += [r.value for r in readings]
            self.keys.append(key)
            self.cond.notify_all()
        if on_durable is not None:
            on_durable()

    def delivered(self, key: str) -> bool:
        return key in self.keys

    def reject(self, source: str, reason: str, detail: str) -> None:
        return None


def test_a_sink_of_single_messages_gets_each_message_with_its_key_and_acknowledges_it(
        mosquitto: Mosquitto, unique_topic: str) -> None:
    from collector.metrics import CollectorMetrics
    from collector.sources.mqtt import MqttSource

    site = parse_site(SEQ_SITE % unique_topic, "seq.yaml")
    broker = BrokerAddress(HOST, mosquitto.port)
    client_id = f"single-{uuid.uuid4().hex[:8]}"
    sink = MessageBySink()
    source = MqttSource(site, broker, sink, CollectorMetrics(), SystemClock(), client_id=client_id)
    source.start()
    try:
        for _ in range(200):
            if source.connected:
                break
            time.sleep(0.05)
        for n in range(5):
            publish_one(mosquitto.port, f"{unique_topic}/seq", str(n))
        with sink.cond:
            assert sink.cond.wait_for(lambda: len(sink.values) == 5, 10)
        assert sink.values == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert len(set(sink.keys)) == 5  # one delivery key per message
        assert all(key is not None for key in sink.keys)
    finally:
        source.stop()
    again = MessageBySink()  # same session: everything was acknowledged, nothing comes again
    second = MqttSource(site, broker, again, CollectorMetrics(), SystemClock(), client_id=client_id)
    second.start()
    try:
        publish_one(mosquitto.port, f"{unique_topic}/seq", "99")
        with again.cond:
            assert again.cond.wait_for(lambda: bool(again.values), 10)
        assert again.values == [99.0]
    finally:
        second.stop()

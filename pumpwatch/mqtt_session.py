"""A lean MQTT 3.1.1 session: whole reads from the socket, batched PUBACKs and publishes.

paho reads a packet with three or more `recv` calls and a `select` (one byte of header, the length a
byte at a time, then the body) and sends each PUBACK through its own queue, wake-up and `send`: some
40 µs of CPU per message before any of our work. This session reads up to `READ_SIZE` bytes at a
time, cuts every complete packet out of them, hands the PUBLISH packets of one read to `on_messages`
in one call, and sends the PUBACKs of a whole commit in one write.

It publishes at QoS 0 only (the live view, `collector.publishers.live`): the messages of one call go
out in one write, where paho wakes its network thread and sends once per message. What it does not do,
because its users do not need it: publish at QoS 1 or 2, will messages, MQTT 5. Its users: the
collector's MQTT intake, its live readings out, a share group's peer readings (`collector.group`) and
the API's live feed (`maintenance.feed`): every place that takes or sends thousands of messages a second.

Every read is ACKed at the TCP level at once (`TCP_QUICKACK`): a broker without TCP_NODELAY (Mosquitto's
default) sends a message only once the one before it is ACKed, and Linux otherwise holds that ACK back
for data of ours to carry it. PUBACKs go out once per commit, so messages then waited at the broker
for the next commit (`bench.alarm_latency`: p99 42 against 26 ms at a 20 ms commit window).

Threads: one network thread does all socket I/O (an `ssl` socket must not be read and written from
two threads at once). `ack` (from the pipeline's intake thread) and `subscribe`/`unsubscribe` queue
their packets and wake the network thread through a socket pair. A PUBACK queued for a connection
that has since dropped is discarded: the broker sends the message again (DUP) on the next one, and
the source recognises it by its delivery key.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pumpwatch.backoff import Backoff
from pumpwatch.mqtturl import BrokerAddress

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024  # bytes per recv: many messages per read at high rates
MAX_PACKET = 2 * 1024 * 1024  # a longer packet is a protocol error (payloads over 256 KiB are refused)
CONNECT_TIMEOUT = 10.0  # s for TCP, TLS and CONNACK
PAUSE_POLL = 0.05  # s between two looks at `can_take` while paused
CLOSE_TIMEOUT = 2.0  # s to wait for the broker to close after DISCONNECT
OUTBOX_LIMIT = 4 * 1024 * 1024  # bytes of QoS 0 messages waiting to be sent; more are refused
TOPIC_CACHE = 10_000  # topic bytes -> str, decoded once per topic

PUBLISH, CONNACK, SUBACK, UNSUBACK, PINGRESP = 3, 2, 9, 11, 13
_PINGREQ = b"\xc0\x00"
_DISCONNECT = b"\xe0\x00"
_PUBACK = struct.Struct("!BBH")
_CONNACK_CODES = {1: "unacceptable protocol version", 2: "identifier rejected", 3: "server unavailable",
                  4: "bad user name or password", 5: "not authorised"}


@dataclass(frozen=True, slots=True)
class Message:
    """One PUBLISH received: topic, payload, QoS, packet id (0 at QoS 0), DUP flag, and its connection."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    dup: bool
    connection: int


class ProtocolError(Exception):
    """The broker sent something this session cannot read, or refused it."""


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def _packet(first: int, body: bytes) -> bytes:
    """A packet: its first byte, the remaining length (variable-length integer), the body."""
    length = len(body)
    header = bytearray([first])
    while True:
        byte = length & 0x7F
        length >>= 7
        header.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(header) + body


def connect_packet(client_id: str, keepalive: int, *, clean: bool, username: str | None,
                   password: str | None) -> bytes:
    """CONNECT for MQTT 3.1.1."""
    flags = (0x02 if clean else 0) | (0x80 if username is not None else 0)
    flags |= 0x40 if username is not None and password is not None else 0
    body = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + _string(client_id)
    if username is not None:
        body += _string(username)
        if password is not None:
            body += _string(password)
    return _packet(0x10, body)


def subscribe_packet(mid: int, topics: Sequence[str], qos: int = 1) -> bytes:
    """SUBSCRIBE to each topic at `qos`."""
    return _packet(0x82, struct.pack("!H", mid) + b"".join(_string(t) + bytes([qos]) for t in topics))


def unsubscribe_packet(mid: int, topics: Sequence[str]) -> bytes:
    """UNSUBSCRIBE from each topic."""
    return _packet(0xA2, struct.pack("!H", mid) + b"".join(_string(t) for t in topics))


def publish_packets(messages: Sequence[tuple[str, bytes]]) -> bytes:
    """PUBLISH packets at QoS 0 (no packet id, nothing comes back), in one buffer."""
    return b"".join([_packet(0x30, _string(topic) + payload) for topic, payload in messages])


def pubacks(mids: Sequence[int]) -> bytes:
    """The PUBACKs of these packet ids, in one buffer."""
    pack = _PUBACK.pack
    return b"".join([pack(0x40, 2, mid) for mid in mids])


class PacketReader:
    """Cuts complete packets out of the bytes received; PUBLISH packets become `Message`s."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self._topics: dict[bytes, str] = {}

    def feed(self, data: bytes, connection: int) -> tuple[list[Message], list[tuple[int, bytes]]]:
        """Take received bytes; the complete PUBLISH messages and the other packets (type, body)."""
        buf = self.buffer
        buf += data
        messages: list[Message] = []
        others: list[tuple[int, bytes]] = []
        topics = self._topics
        n = len(buf)
        pos = 0
        while n - pos >= 2:
            first = buf[pos]
            i = pos + 1
            length = shift = 0
            complete = False
            while i < n:
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    complete = True
                    break
                shift += 7
                if shift > 21:
                    raise ProtocolError("remaining length longer than four bytes")
            if not complete:
                break  # the length itself is not all here yet
            if length > MAX_PACKET:
                raise ProtocolError(f"packet of {length} bytes is over the limit")
            end = i + length
            if end > n:
                break
            kind = first >> 4
            if kind == PUBLISH:
                qos = (first >> 1) & 3
                tlen = (buf[i] << 8) | buf[i + 1]
                j = i + 2 + tlen
                raw = bytes(buf[i + 2:j])
                topic = topics.get(raw)
                if topic is None:
                    topic = raw.decode("utf-8", "replace")
                    if len(topics) >= TOPIC_CACHE:
                        topics.clear()
                    topics[raw] = topic
                mid = 0
                if qos:
                    mid = (buf[j] << 8) | buf[j + 1]
                    j += 2
                messages.append(Message(topic, bytes(buf[j:end]), qos, mid, bool(first & 0x08),
                                        connection))
            else:
                others.append((kind, bytes(buf[i:end])))
            pos = end
        if pos:
            del buf[:pos]
        return messages, others


class MqttSession:
    """A persistent-session QoS 1 subscriber on its own network thread (see the module docstring).

    `on_messages` gets every complete PUBLISH of one read in arrival order, on the network thread; it
    may block (backpressure: the thread stops reading). While `can_take()` is False the session does not
    read at all but keeps the connection alive. `on_state(True/False)` tells connects and disconnects.
    Reconnects by itself, waiting with `Backoff`, and subscribes again each time.
    """

    def __init__(self, broker: BrokerAddress, client_id: str, subscriptions: Sequence[str], *,
                 on_messages: Callable[[list[Message]], None], on_state: Callable[[bool], None],
                 keepalive: int = 30, clean: bool = False,
                 can_take: Callable[[], bool] | None = None) -> None:
        self.broker = broker
        self.can_take = can_take  # False: do not read for now (the intake is full)
        self.client_id = client_id
        self.subscriptions = list(subscriptions)
        self.on_messages = on_messages
        self.on_state = on_state
        self.keepalive = keepalive
        self.clean = clean
        self.connection = 0  # counts connections; a message carries the one it came on
        self.connected = False
        self._lock = threading.Lock()
        self._outbox: list[bytes] = []
        self._outbox_bytes = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._woken = False
        self._stopping = threading.Event()
        self._leaving = False
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._mid = 0

    # --- any thread ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background and keep connected until `stop`."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"mqtt-session-{self.client_id}",
                                        daemon=True)
        self._thread.start()

    def stop(self, *, leave: bool = False) -> None:
        """Disconnect cleanly; what was not acknowledged stays queued at the broker.

        `leave`: unsubscribe first, so the broker stops queueing for this session while it is away (a
        shared-subscription group's member: the other members take its share meanwhile; the next
        connect subscribes again).
        """
        self._leaving = leave
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def ack(self, connection: int, mids: Sequence[int]) -> None:
        """Send the PUBACKs of these messages, if the connection they came on is still up."""
        if not mids:
            return
        with self._lock:
            if connection != self.connection or not self.connected:
                return  # the broker redelivers them on the next connection
            self._outbox.append(pubacks(mids))
        self._wake()

    def publish(self, messages: Sequence[tuple[str, bytes]]) -> bool:
        """Send (topic, payload) messages at QoS 0 in one write from the network thread.

        False, and nothing is sent, while disconnected or while `OUTBOX_LIMIT` bytes already wait (a
        view that is late is worth nothing; the caller counts what it could not send).
        """
        data = publish_packets(messages)
        with self._lock:
            if not self.connected or self._outbox_bytes + len(data) > OUTBOX_LIMIT:
                return False
            self._outbox.append(data)
            self._outbox_bytes += len(data)
        self._wake()
        return True

    def subscribe(self, topics: Sequence[str]) -> None:
        """Subscribe to more topics at QoS 1 (now if connected, and on every connect)."""
        self.subscriptions = sorted(set(self.subscriptions) | set(topics))
        self._send_later(lambda mid: subscribe_packet(mid, topics))

    def unsubscribe(self, topics: Sequence[str]) -> None:
        """Unsubscribe from topics (now if connected, and leave them out of later connects)."""
        self.subscriptions = sorted(set(self.subscriptions) - set(topics))
        self._send_later(lambda mid: unsubscribe_packet(mid, topics))

    def subscribe_only(self, topics: Sequence[str]) -> tuple[list[str], list[str]]:
        """Subscribe to these topics and no others (a reload's new plan); the topics added and gone."""
        had, wanted = set(self.subscriptions), set(topics)
        added, gone = sorted(wanted - had), sorted(had - wanted)
        if added:
            self.subscribe(added)
        if gone:
            self.unsubscribe(gone)
        return added, gone

    def _send_later(self, build: Callable[[int], bytes]) -> None:
        with self._lock:
            if not self.connected:
                return  # the next connect subscribes to `subscriptions`
            self._outbox.append(build(self._next_mid()))
        self._wake()

    def _next_mid(self) -> int:
        self._mid = self._mid % 0xFFFF + 1
        return self._mid

    def _wake(self) -> None:
        with self._lock:
            if self._woken:
                return
            self._woken = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # --- network thread -------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = Backoff(first=0.5, cap=10.0)
        while not self._stopping.is_set():
            try:
                sock = self._connect()
            except (OSError, ProtocolError) as err:
                delay = backoff.next()
                if backoff.failures == 1 or backoff.failures % 10 == 0:
                    log.warning("MQTT broker %s: %s; trying again in %.1f s", self.broker, err, delay)
                self._stopping.wait(delay)
                continue
            backoff.reset()
            try:
                self._serve(sock)
            except (OSError, ProtocolError) as err:
                if not self._stopping.is_set():
                    log.warning("MQTT connection to %s lost: %s; reconnecting", self.broker, err)
            finally:
                self._drop(sock)
            if not self._stopping.is_set():
                self._stopping.wait(backoff.next())

    def _connect(self) -> socket.socket:
        raw = socket.create_connection((self.broker.host, self.broker.port), timeout=CONNECT_TIMEOUT)
        sock: socket.socket = raw
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.broker.tls:
                context = ssl.create_default_context(cafile=self.broker.ca_file)
                sock = context.wrap_socket(raw, server_hostname=self.broker.host)
            sock.sendall(connect_packet(self.client_id, self.keepalive, clean=self.clean,
                                        username=self.broker.username, password=self.broker.password))
            reply = b""
            while len(reply) < 4:
                chunk = sock.recv(4 - len(reply))
                if not chunk:
                    raise ProtocolError("the broker closed the connection before CONNACK")
                reply += chunk
            if reply[0] != 0x20 or reply[1] != 2:
                raise ProtocolError(f"expected CONNACK, got {reply!r}")
            if reply[3]:
                raise ProtocolError("connection refused: " + _CONNACK_CODES.get(reply[3], f"code {reply[3]}"))
            with self._lock:
                self.connection += 1
                self.connected = True
                self._outbox.clear()  # PUBACKs of the last connection: the broker sends those again
                self._outbox_bytes = 0
                if self.subscriptions:
                    sock.sendall(subscribe_packet(self._next_mid(), self.subscriptions))
            sock.settimeout(CONNECT_TIMEOUT)
            self._sock = sock
        except BaseException:
            sock.close()
            raise
        log.info("MQTT connected to %s; subscribed to %s", self.broker, ", ".join(self.subscriptions))
        self.on_state(True)
        return sock

    def _serve(self, sock: socket.socket) -> None:
        reader = PacketReader()
        connection = self.connection
        tls = isinstance(sock, ssl.SSLSocket)
        ping_every = self.keepalive / 2 if self.keepalive else None
        last_sent = last_heard = time.monotonic()
        ping_sent: float | None = None
        can_take = self.can_take
        quick_ack = getattr(socket, "TCP_QUICKACK", 0)
        while not self._stopping.is_set():
            # Paused (the intake is full): the socket is not read, so the broker holds the messages
            # (TCP's window fills), but PUBACKs and PINGREQs still go out: blocking in `on_messages`
            # instead kept the pings back and the broker dropped the connection every keepalive.
            paused = can_take is not None and not can_take()
            readable: list[socket.socket]
            if tls and not paused and sock.pending():  # type: ignore[attr-defined]
                readable = [sock]
            elif paused:
                readable = select.select([self._wake_r], [], [], PAUSE_POLL)[0]
            else:
                readable = select.select([sock, self._wake_r], [], [], ping_every or 1.0)[0]
            if self._wake_r in readable or self._woken:
                last_sent = self._flush(sock) or last_sent
            now = time.monotonic()
            if sock in readable:
                data = sock.recv(READ_SIZE)
                if not data:
                    raise ProtocolError("the broker closed the connection")
                if quick_ack:
                    sock.setsockopt(socket.IPPROTO_TCP, quick_ack, 1)
                last_heard = now
                messages, others = reader.feed(data, connection)
                for kind, body in others:
                    if kind == PINGRESP:
                        ping_sent = None
                    elif kind == SUBACK and b"\x80" in body[2:]:
                        log.warning("MQTT broker %s refused a subscription", self.broker)
                if messages:
                    self.on_messages(messages)
            if not ping_every:
                continue
            if paused:  # the broker hears a PINGREQ; its PINGRESP waits behind the unread messages
                ping_sent = None
                if now - last_sent >= ping_every:
                    sock.sendall(_PINGREQ)
                    last_sent = now
                continue
            if ping_sent is not None and now - ping_sent > self.keepalive:
                raise ProtocolError(f"no PINGRESP within {self.keepalive} s")
            if ping_sent is None and now - max(last_sent, last_heard) >= ping_every:
                sock.sendall(_PINGREQ)
                last_sent = ping_sent = now
        with contextlib.suppress(OSError):
            self._flush(sock)
            if self._leaving and self.subscriptions:
                sock.sendall(unsubscribe_packet(self._next_mid(), self.subscriptions))
            sock.sendall(_DISCONNECT)
            self._await_close(sock)

    @staticmethod
    def _await_close(sock: socket.socket) -> None:
        """Wait for the broker to close after DISCONNECT: it has then taken every PUBACK before it.

        Closing first could leave the last PUBACKs unread at the broker when the next connection with
        this client id takes the session over; the broker would send those messages again.
        """
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(READ_SIZE):  # late messages are not acknowledged: the broker keeps them
                return

    def _flush(self, sock: socket.socket) -> float | None:
        """Send what other threads queued; the time of sending, or None when nothing was queued."""
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass
        with self._lock:
            self._woken = False
            outbox, self._outbox = self._outbox, []
            self._outbox_bytes = 0
        if not outbox:
            return None
        sock.sendall(b"".join(outbox))
        return time.monotonic()

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            was, self.connected = self.connected, False
            self._sock = None
        with contextlib.suppress(OSError):
            sock.close()
        if was:
            self.on_state(False)

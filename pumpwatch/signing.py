"""Signatures on the messages between processes: HMAC-SHA256 with one key per sending process.

The broker's ACL decides who may publish where; a signature decides whether the receiver believes
what arrived. Collectors (and a scheduler running alone) sign the alarm events and live readings
they publish; an edge signs its reading batches and alarm events. The receivers (the API's alarm
feed, the centre's edge intake) verify them and refuse, and count, what fails:
`pumpwatch_wire_refused_total{channel, reason}` with reason `forged` (unsigned, a bad signature, a
key that may not speak on that topic), `unknown_key`, `replayed` or `unknown_asset`.

A signed message is one header line and the unchanged payload:

    PWS1 <key id> <sequence> <signature>   (then a newline, then the payload)

The signature (HMAC-SHA256, base64url) covers a domain tag, the topic, the key id, the sequence and
the payload, so a signed message cannot be moved to another topic or given another number.

Why HMAC: the standard library has it, it costs microseconds per message (a collector signs every
live-readings message), and keys are short files any operator can make (`openssl rand -hex 32`).
The price is that a verifier holds the secrets it verifies with; the broker's ACL keeps a verifier's
broker identity from publishing where those keys would count (an API may only subscribe).

Replay: the sequence is the sender's clock in microseconds, raised by one where needed so that it
always grows (per key and stream), and kept growing across restarts by a small reservation file in
the sender's state directory. A receiver remembers, per (key, stream), the highest sequence it took
and the ones of the last `REORDER_SECONDS` (messages of one sender may cross on the way): anything
at or below that mark, or older than the stream's maximum age, is refused as `replayed`. The marks
of alarm streams are kept on disk (alarm events are records: a replay after a restart must fail
too); those of live readings are not: live readings are never queued by the broker, so their short
maximum age (`live_max_age`, seconds) refuses an old one after a restart anyway. Edge batches are
not checked for replay: the same readings stored twice are the same points (one per series and
timestamp), and the centre already acknowledges a batch number it has stored without storing it
again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from pumpwatch.edge_wire import EDGE_ALARM_STREAM
from pumpwatch.portfolio import Portfolio, as_portfolio
from pumpwatch.settings import Settings
from pumpwatch.site import Site
from pumpwatch.wire import ALARM_STREAM, LIVE_STREAM, Refusal, Refused

MAGIC = b"PWS1 "
KEY_MIN_CHARS = 32  # `openssl rand -hex 32` gives 64
KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
REORDER_SECONDS = 10.0  # how far messages of one sender may cross on the way and still count
RESERVE_US = 10_000_000  # sequence numbers reserved on disk ahead of use (10 s of the sender's clock)
_DOMAIN = b"pumpwatch-wire-1\n"
_HEADER = re.compile(rb"^PWS1 ([A-Za-z0-9_.-]{1,64}) ([0-9]{1,20}) ([A-Za-z0-9_-]{43})$")

Clock = Callable[[], float]


class SigningError(ValueError):
    """A signing key or key id that cannot be used; the message says which and why."""


# --- keys ------------------------------------------------------------------------------------------


def load_key(path: Path) -> bytes:
    """The secret in a key file (surrounding white space removed); ValueError when unusable."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise SigningError(f"signing key {path}: cannot read it: {err}") from err
    if len(text) < KEY_MIN_CHARS:
        raise SigningError(f"signing key {path}: {len(text)} characters, at least {KEY_MIN_CHARS} needed "
                         "(make one with `openssl rand -hex 32`)")
    return text.encode()


def load_keyring(directory: Path | None, only: Iterable[str] | None = None,
                 leave_out: Iterable[str] = ()) -> dict[str, bytes]:
    """The keys of a directory, one file `<key id>.key` per sender: key id -> secret.

    `only` keeps the named key ids, `leave_out` drops some (the API does not take edges' keys).
    """
    if directory is None:
        return {}
    wanted = None if only is None else set(only)
    dropped = set(leave_out)
    keys: dict[str, bytes] = {}
    for path in sorted(directory.glob("*.key")):
        kid = path.stem
        if not KEY_ID.match(kid):
            raise SigningError(f"signing key {path}: a key id is letters, digits, '.', '_' or '-'")
        if (wanted is not None and kid not in wanted) or kid in dropped:
            continue
        keys[kid] = load_key(path)
    return keys


# --- signing ---------------------------------------------------------------------------------------


def _mac(key: bytes, topic: str, kid: str, seq: int, body: bytes) -> str:
    message = b"".join((_DOMAIN, topic.encode(), b"\n", kid.encode(), b"\n", str(seq).encode(), b"\n", body))
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).rstrip(b"=").decode()


def is_sealed(payload: bytes | bytearray) -> bool:
    """Whether a payload carries a signature header."""
    return bytes(payload[:len(MAGIC)]) == MAGIC


class Sequences:
    """A sender's sequence numbers, one series per stream: its clock in µs, always growing.

    `path` keeps a reservation ahead of the numbers given (written with fsync at most once per
    `RESERVE_US` of numbers), so a restart with the clock set back never gives a number again.
    """

    def __init__(self, path: Path | None, clock: Clock = time.time) -> None:
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, int] = {}
        self._reserved: dict[str, int] = {}
        if path is not None and path.exists():
            try:
                stored = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise SigningError(f"sequence reservations {path}: unreadable ({err}); remove the file "
                                 "only if this sender's clock is right") from err
            if isinstance(stored, dict):
                self._reserved = {str(k): int(v) for k, v in stored.items()}
                self._last = dict(self._reserved)

    def next(self, stream: str) -> int:
        """The next number of `stream`."""
        with self._lock:
            seq = max(self._last.get(stream, 0) + 1, int(self.clock() * 1_000_000))
            self._last[stream] = seq
            if self.path is not None and seq > self._reserved.get(stream, 0):
                self._reserved[stream] = seq + RESERVE_US
                self._save()
            return seq

    def _save(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as out:
            json.dump(self._reserved, out)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(self.path)


class Signer:
    """Signs a process's messages with its key (`seal`)."""

    def __init__(self, key_id: str, key: bytes, sequences: Sequences) -> None:
        if not KEY_ID.match(key_id):
            raise SigningError(f"signing key id {key_id!r}: letters, digits, '.', '_' or '-' (at most 64)")
        self.key_id = key_id
        self._key = key
        self.sequences = sequences

    def seal(self, topic: str, body: bytes, stream: str) -> bytes:
        """The payload to publish on `topic`: the signature header line, then `body` unchanged."""
        seq = self.sequences.next(stream)
        signature = _mac(self._key, topic, self.key_id, seq, body)
        return f"PWS1 {self.key_id} {seq} {signature}\n".encode() + body


# --- verifying -------------------------------------------------------------------------------------


_SCHEMA = "CREATE TABLE IF NOT EXISTS marks (kid TEXT, stream TEXT, high INTEGER, PRIMARY KEY (kid, stream))"


class ReplayGuard:
    """Per (key, stream): the highest sequence taken and the recent ones; on disk for durable streams."""

    def __init__(self, path: Path | None = None, *, durable: Iterable[str] = (),
                 reorder: float = REORDER_SECONDS) -> None:
        self.durable = frozenset(durable)
        self.reorder_us = int(reorder * 1_000_000)
        self._lock = threading.Lock()
        self._high: dict[tuple[str, str], int] = {}
        self._recent: dict[tuple[str, str], set[int]] = {}
        # Marks read from disk: which numbers near them were taken is not known, so none at or below is.
        self._floor: dict[tuple[str, str], int] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
            for kid, stream, high in self._db.execute("SELECT kid, stream, high FROM marks"):
                self._high[(str(kid), str(stream))] = self._floor[(str(kid), str(stream))] = int(high)

    def fresh(self, kid: str, stream: str, seq: int) -> bool:
        """Whether `seq` was never taken from this key on this stream (nothing is recorded)."""
        with self._lock:
            high = self._high.get((kid, stream))
            if high is None or seq > high:
                return True
            if seq <= self._floor.get((kid, stream), -1):
                return False
            return seq > high - self.reorder_us and seq not in self._recent.get((kid, stream), set())

    def record(self, kid: str, stream: str, seq: int) -> None:
        """Remember that `seq` was taken (on disk before this returns, for a durable stream)."""
        with self._lock:
            key = (kid, stream)
            high = max(self._high.get(key, seq), seq)
            recent = self._recent.setdefault(key, set())
            recent.add(seq)
            floor = high - self.reorder_us
            if len(recent) > 64:
                recent.difference_update([s for s in recent if s <= floor])
            changed = self._high.get(key) != high
            self._high[key] = high
            if changed and self._db is not None and stream in self.durable:
                self._db.execute("INSERT INTO marks (kid, stream, high) VALUES (?, ?, ?) "
                                 "ON CONFLICT (kid, stream) DO UPDATE SET high = excluded.high",
                                 (kid, stream, high))

    def close(self) -> None:
        """Close the marks file."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class Opened:
    """A verified message: its payload and who sent it (`record()` once it is safely taken)."""

    def __init__(self, body: bytes, kid: str | None, stream: str, seq: int | None,
                 guard: ReplayGuard | None) -> None:
        self.body = body
        self.kid = kid
        self.stream = stream
        self.seq = seq
        self._guard = guard

    def record(self) -> None:
        """Remember its sequence, so the same message is refused from now on."""
        if self._guard is not None and self.kid is not None and self.seq is not None:
            self._guard.record(self.kid, self.stream, self.seq)


class Verifier:
    """Checks signed messages against a keyring and a replay guard.

    With no keys (development) every message is taken as it comes, a signed one with its header
    removed; with keys (production refuses to start without them) an unsigned message is `forged`.
    `max_age` gives, per stream, how old (seconds, by the sender's clock) a message may be.
    """

    def __init__(self, keys: Mapping[str, bytes], guard: ReplayGuard | None = None, *,
                 max_age: Mapping[str, float] | None = None, clock: Clock = time.time) -> None:
        self.keys = dict(keys)
        self.guard = guard
        self.max_age = dict(max_age or {})
        self.clock = clock

    @property
    def required(self) -> bool:
        """Whether messages must be signed (there are keys to check them with)."""
        return bool(self.keys)

    def open(self, topic: str, payload: bytes | bytearray, stream: str, *, sender: str | None = None,
             replay: bool = True) -> Opened:
        """The payload of a message, verified; `Refused` with the reason otherwise.

        `sender`: the only key id that may speak on this topic (an edge's own topics). `replay`:
        check the sequence (the caller then calls `record()` on the result once the message is safe).
        """
        data = bytes(payload)
        if not is_sealed(data):
            if self.required:
                raise Refused(Refusal.FORGED, f"{topic}: unsigned")
            return Opened(data, None, stream, None, None)
        head, newline, body = data.partition(b"\n")
        match = _HEADER.match(head)
        if not newline or match is None:
            raise Refused(Refusal.FORGED, f"{topic}: malformed signature header")
        kid, seq = match.group(1).decode(), int(match.group(2))
        if not self.required:
            return Opened(body, kid, stream, seq, None)
        key = self.keys.get(kid)
        if key is None:
            raise Refused(Refusal.UNKNOWN_KEY, f"{topic}: key {kid!r} is not trusted here")
        if sender is not None and kid != sender:
            raise Refused(Refusal.FORGED, f"{topic}: signed by {kid!r}, which may not speak for {sender!r}")
        if not hmac.compare_digest(_mac(key, topic, kid, seq, body), match.group(3).decode()):
            raise Refused(Refusal.FORGED, f"{topic}: bad signature for key {kid!r}")
        if not replay:
            return Opened(body, kid, stream, seq, None)
        limit = self.max_age.get(stream)
        age = self.clock() - seq / 1_000_000
        if limit is not None and age > limit:
            raise Refused(Refusal.REPLAYED, f"{topic}: sent {age:.0f} s ago, more than {limit:g} s")
        if self.guard is not None and not self.guard.fresh(kid, stream, seq):
            raise Refused(Refusal.REPLAYED, f"{topic}: sequence {seq} of key {kid!r} was taken already")
        return Opened(body, kid, stream, seq, self.guard)


class WireRefusals:
    """`pumpwatch_wire_refused_total{channel, reason}`: messages a receiver refused, and why."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counter = Counter("pumpwatch_wire_refused_total",
                               "Messages between processes refused: forged, replayed, unknown key or asset",
                               ["channel", "reason"], registry=registry)

    def count(self, channel: str, refusal: Refused) -> None:
        """Count one refusal."""
        self.counter.labels(channel=channel, reason=refusal.reason.value).inc()

    def total(self, reason: str | None = None) -> float:
        """How many were refused (for one reason, or all)."""
        value = 0.0
        for metric in self.counter.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and (reason is None or sample.labels["reason"] == reason):
                    value += sample.value
        return value


# --- from the settings -----------------------------------------------------------------------------


def signer_for(settings: Settings, edge_id: str | None = None) -> Signer | None:
    """The signer of this process (None without a key file); an edge's key id is its edge id.

    SigningError for a key that cannot be used or a key id that does not fit.
    """
    cfg = settings.signing
    if cfg.key_file is None:
        return None
    kid = cfg.key_id or edge_id
    if kid is None:
        raise SigningError("a signing key needs its id: set PUMPWATCH_SIGNING__KEY_ID (e.g. collector-a)")
    if edge_id is not None and kid != edge_id:
        raise SigningError(f"an edge signs with its edge id as key id: {kid!r} is not {edge_id!r}")
    sequences = Sequences(Path(settings.collector.state_dir) / f"wire-seq-{kid}.json")
    return Signer(kid, load_key(cfg.key_file), sequences)


def feed_verifier(settings: Settings, site: Site | Portfolio, marks: Path | None) -> Verifier:
    """The API's check of collectors' alarm events and live readings (every estate's edges' keys left out)."""
    cfg = settings.signing
    keys = load_keyring(cfg.trusted_dir, leave_out=list(as_portfolio(site).edge_estates()))
    return Verifier(keys, ReplayGuard(marks if keys else None, durable=[ALARM_STREAM]),
                    max_age={ALARM_STREAM: cfg.max_age, LIVE_STREAM: cfg.live_max_age})


def edge_verifier(settings: Settings, site: Site | Portfolio, marks: Path | None) -> Verifier:
    """The centre's check of its edges' batches and alarm events (the edges' own keys, every estate's)."""
    cfg = settings.signing
    keys = load_keyring(cfg.trusted_dir, only=list(as_portfolio(site).edge_estates()))
    return Verifier(keys, ReplayGuard(marks if keys else None, durable=[EDGE_ALARM_STREAM]),
                    max_age={EDGE_ALARM_STREAM: cfg.max_age})

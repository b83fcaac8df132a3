"""Two network namespaces joined by a veth pair: an edge box and the centre, with a link that drops.

`Link` makes them (`ip netns add`, `ip link add ... type veth peer ...`, addresses in 10.213.N.0/30,
a 4G-like `tc ... tbf rate 1mbit` on both ends: netem is not in every kernel), cuts and mends the
link (`ip link set ... down/up`) and deletes it all. Servers and `pumpwatch` processes run inside a
namespace through `ip netns exec`; code of the test itself reaches into one with `Link.run_in`,
which runs a function on a thread that joined the namespace (setns), so its sockets live there.

Only root can do this: `netns_problem()` says why namespaces cannot be made here (tests skip with
that reason), after trying. Everything listens on the namespaces' own addresses, never the host's.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.support.processes import PumpwatchProcess
from tests.support.services import InfluxDB, Mosquitto, ServiceError, _log_tail

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_SUBNETS = iter(range(1, 250))  # 10.213.N.0/30, one per link made by this process


def _ip(*args: str) -> None:
    try:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f"ip {' '.join(args)}: {err.stderr.strip()}") from err


def _tc(*args: str) -> None:
    try:
        subprocess.run(["tc", *args], check=True, capture_output=True, text=True, timeout=30)
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f"tc {' '.join(args)}: {err.stderr.strip()}") from err


def netns_problem() -> str | None:
    """Why network namespaces cannot be made here, or None when they can (tried for real)."""
    if os.geteuid() != 0:
        return "network namespaces need root (the tests and CI run as root)"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "`ip` and `tc` are missing: apt-get install -y iproute2 (scripts/test installs it)"
    probe = f"pwprobe-{uuid.uuid4().hex[:8]}"
    try:
        _ip("netns", "add", probe)
    except (RuntimeError, OSError) as err:
        return f"`ip netns add` fails here: {err}"
    with contextlib.suppress(RuntimeError, OSError):
        _ip("netns", "del", probe)
    return None


def run_in_namespace(namespace: str, work: Callable[[], T]) -> T:
    """Run `work` on a thread that joined `namespace` (setns): its sockets are the namespace's."""
    libc = ctypes.CDLL(None, use_errno=True)
    result: list[T] = []
    failure: list[BaseException] = []

    def joined() -> None:
        try:
            with open(f"/run/netns/{namespace}", "rb") as handle:
                if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise OSError(errno, f"setns into {namespace}: {os.strerror(errno)}")
            result.append(work())
        except BaseException as err:
            failure.append(err)

    thread = threading.Thread(target=joined, name=f"in-{namespace}", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def start_in_namespace(namespace: str, work: Callable[[], None]) -> threading.Thread:
    """Start `work` on a daemon thread inside `namespace` (for a publisher that runs meanwhile)."""
    thread = threading.Thread(target=run_in_namespace, args=(namespace, work), daemon=True,
                              name=f"bg-{namespace}")
    thread.start()
    return thread


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port (from the calling thread's namespace)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Link:
    """An edge namespace and a centre namespace joined by one veth pair, rate-limited like 4G."""

    rate: str = "1mbit"
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    subnet: int = field(default_factory=lambda: next(_SUBNETS))
    made: bool = False

    @property
    def centre(self) -> str:
        """The centre's namespace."""
        return f"pwc-{self.tag}"

    @property
    def edge(self) -> str:
        """The edge box's namespace."""
        return f"pwe-{self.tag}"

    @property
    def centre_ip(self) -> str:
        """The centre's address on the link (the edge reaches its broker there)."""
        return f"10.213.{self.subnet}.1"

    @property
    def edge_ip(self) -> str:
        """The edge's address on the link."""
        return f"10.213.{self.subnet}.2"

    @property
    def _centre_if(self) -> str:
        return f"pwc{self.tag}"

    @property
    def _edge_if(self) -> str:
        return f"pwe{self.tag}"

    def create(self) -> None:
        """Make both namespaces, the veth pair, the addresses and the rate limit on both ends."""
        _ip("netns", "add", self.centre)
        _ip("netns", "add", self.edge)
        self.made = True
        _ip("link", "add", self._centre_if, "type", "veth", "peer", "name", self._edge_if)
        _ip("link", "set", self._centre_if, "netns", self.centre)
        _ip("link", "set", self._edge_if, "netns", self.edge)
        for namespace, interface, address in ((self.centre, self._centre_if, self.centre_ip),
                                              (self.edge, self._edge_if, self.edge_ip)):
            _ip("-n", namespace, "addr", "add", f"{address}/30", "dev", interface)
            _ip("-n", namespace, "link", "set", "lo", "up")
            _ip("-n", namespace, "link", "set", interface, "up")
            _tc("-n", namespace, "qdisc", "add", "dev", interface, "root", "tbf", "rate", self.rate,
                "burst", "32kbit", "latency", "400ms")

    def cut(self) -> None:
        """Take the link down (the edge's end): nothing passes, connections hang as on a dead 4G link."""
        _ip("-n", self.edge, "link", "set", self._edge_if, "down")

    def mend(self) -> None:
        """Bring the link back."""
        _ip("-n", self.edge, "link", "set", self._edge_if, "up")

    def delete(self) -> None:
        """Delete both namespaces (the veth pair goes with them)."""
        if not self.made:
            return
        for namespace in (self.edge, self.centre):
            with contextlib.suppress(RuntimeError, OSError):
                _ip("netns", "del", namespace)
        self.made = False

    def run_in(self, namespace: str, work: Callable[[], T]) -> T:
        """Run `work` inside one of the namespaces (see `run_in_namespace`)."""
        return run_in_namespace(namespace, work)

    def __enter__(self) -> Link:
        try:
            self.create()
        except BaseException:
            self.delete()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.delete()


class NamespacedMosquitto(Mosquitto):
    """Mosquitto inside a namespace, listening on `addresses` (loopback and the link's address there).

    `users` (name -> password) turn anonymous access off and `acl` lines apply; with `tls` the
    listener on the link's address speaks TLS while the loopback one stays plain for the centre's
    own collector.
    """

    def __init__(self, namespace: str, link_address: str, *, users: dict[str, str] | None = None,
                 acl: list[str] | None = None, tls: tuple[Path, Path] | None = None) -> None:
        super().__init__(tls=tls)
        self.namespace = namespace
        self.link_address = link_address
        self.users = users or {}
        self.acl = acl or []
        self.link_port = 0

    def _config(self, port: int) -> str:
        base = super()._config(port)
        lines = [line for line in base.splitlines()
                 if not line.startswith(("listener ", "certfile ", "keyfile ", "allow_anonymous"))]
        self.link_port = port + 1 if port < 65535 else port - 1
        head = ["per_listener_settings false", f"listener {port} 127.0.0.1",
                f"listener {self.link_port} {self.link_address}"]
        if self.tls:
            head += [f"certfile {self.tls[0]}", f"keyfile {self.tls[1]}"]
        if self.users:
            passwords = self.directory / "passwd"
            passwords.write_text("")
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True,
                               capture_output=True)
            acl = self.directory / "acl"
            acl.write_text("\n".join(self.acl) + "\n")
            for path in (passwords, acl):
                path.chmod(0o644)
            head += ["allow_anonymous false", f"password_file {passwords}", f"acl_file {acl}"]
        else:
            head.append("allow_anonymous true")
        return "\n".join(head + lines) + "\n"

    def _command(self, ports: tuple[int, ...]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *super()._command(ports)]

    def _ready(self, ports: tuple[int, ...]) -> bool:
        return (" running" in _log_tail(self.log_path, self._log_offset)
                and run_in_namespace(self.namespace, lambda: port_open("127.0.0.1", ports[0])))


class NamespacedInfluxDB(InfluxDB):
    """InfluxDB inside a namespace, on its loopback (the centre's collector and the test reach it there)."""

    def __init__(self, namespace: str) -> None:
        super().__init__()
        self.namespace = namespace

    def _command(self, ports: tuple[int, ...]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *super()._command(ports)]

    def _ready(self, ports: tuple[int, ...]) -> bool:
        return run_in_namespace(self.namespace, lambda: InfluxDB._ready(self, ports))

    def query(self, database: str, statement: str) -> list[list[Any]]:
        """Rows of an InfluxQL query, asked from inside the namespace."""
        import httpx

        def ask() -> list[list[Any]]:
            resp = httpx.get(f"{self.url}/query", params={"db": database, "q": statement, "epoch": "ns"},
                             timeout=30)
            resp.raise_for_status()
            result = resp.json()["results"][0]
            if "error" in result:
                raise ServiceError(result["error"])
            return [row for series in result.get("series", []) for row in series["values"]]

        return run_in_namespace(self.namespace, ask)


@dataclass
class NamespacedProcess(PumpwatchProcess):
    """A `pumpwatch` role started inside a namespace (`ip netns exec` execs it: SIGKILL reaches it)."""

    namespace: str = ""

    def start(self) -> None:
        """Start (again) inside the namespace, appending to the log."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.namespace, sys.executable, "-m",
                                          "pumpwatch", *self.args],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1


def make_ca(directory: Path, host_ip: str) -> Path:
    """A CA and a broker certificate for `host_ip` signed by it, in `directory`; returns the CA file."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=PumpWatch centre CA",
            "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host_ip}", "-keyout", "broker.key",
            "-out", "broker.csr")
    (directory / "san.cnf").write_text(f"subjectAltName=IP:{host_ip}\n")
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.cnf", "-out", "broker.pem")
    for path in directory.iterdir():
        path.chmod(0o644)
    directory.chmod(0o755)
    return directory / "ca.pem"


@contextlib.contextmanager
def link_or_skip() -> Iterator[Link]:
    """A fresh `Link`, deleted afterwards; pytest.skip with the reason where namespaces cannot be made."""
    import pytest

    problem = netns_problem()
    if problem is not None:
        pytest.skip(problem)
    with Link() as link:
        yield link

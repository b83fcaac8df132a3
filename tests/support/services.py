"""Real Mosquitto, InfluxDB and PostgreSQL servers on free loopback ports, for integration tests.

Each server lives in its own temporary directory (config, data, log) and listens on 127.0.0.1 only,
on ports found by binding port 0; a start that loses a port race is retried on fresh ports. A missing
binary raises `ServiceError` naming the Debian package to install: tests fail, they never skip.
"""

from __future__ import annotations

import abc
import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

import httpx

HOST = "127.0.0.1"
_START_ATTEMPTS = 5  # fresh ports per attempt; only a lost port race is retried
_LOG_TAIL_BYTES = 6000
_PORT_IN_USE = re.compile(r"address already in use", re.IGNORECASE)
_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")  # not on PATH for every user
_POSTGRES_LIB = Path("/usr/lib/postgresql")  # Debian: /usr/lib/postgresql/<major>/bin


class ServiceError(RuntimeError):
    """A test server could not be found, started or stopped."""


class _PortInUse(ServiceError):
    """Another process took a chosen port between picking and binding it."""


def free_ports(count: int = 1) -> tuple[int, ...]:
    """Distinct ports that were free on 127.0.0.1 a moment ago (bound to 0, then released)."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))  # held open until all are picked, so the ports differ
            ports.append(int(sock.getsockname()[1]))
        return tuple(ports)


def find_binary(name: str, package: str, extra_dirs: Iterable[str | Path] | None = None) -> Path:
    """The path of `name` on PATH or in `extra_dirs` (default: the sbin directories).

    A missing binary raises ServiceError naming the Debian package to install.
    """
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    extra_dirs = _SBIN_DIRS if extra_dirs is None else tuple(extra_dirs)
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceError(
        f"`{name}` was not found on PATH{''.join(f', {d}' for d in extra_dirs)}. Install the Debian "
        f"package `{package}` (apt-get install -y {package}); scripts/test installs it for you."
    )


def postgres_bin_dir() -> Path:
    """The directory holding initdb, pg_ctl, psql: newest /usr/lib/postgresql/N/bin, else PATH."""
    versions = [p for p in _POSTGRES_LIB.glob("*/bin") if (p / "initdb").is_file()]
    if versions:
        # Debian's /usr/bin holds only pg_wrapper shims and no initdb, so prefer the real directory.
        return max(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1)
    return find_binary("initdb", "postgresql", extra_dirs=()).parent


def _log_tail(path: Path, since: int = 0) -> str:
    """The end of a log file from byte offset `since`, for error messages."""
    try:
        with path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(since, size - _LOG_TAIL_BYTES))
            return log.read().decode(errors="replace")
    except OSError as err:
        return f"(log {path} unreadable: {err})"


def _clean_env() -> dict[str, str]:
    """The environment for server processes: C messages (log matching), no INFLUXDB_* overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}
    env["LC_ALL"] = "C"
    return env


def _wait_for(ready: Callable[[], bool], deadline: float, interval: float = 0.05) -> bool:
    """Poll `ready` until it returns True or the monotonic deadline passes."""
    while True:
        if ready():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class _Service(abc.ABC):
    """Lifecycle shared by the servers: temp dir, port choice with retry, start/stop/restart/close."""

    name: ClassVar[str]
    port_count: ClassVar[int] = 1

    def __init__(self, start_timeout: float = 60.0, stop_timeout: float = 20.0) -> None:
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._dir: Path | None = None
        self._ports: tuple[int, ...] | None = None

    @property
    def directory(self) -> Path:
        """The server's temporary directory (config, data, log)."""
        if self._dir is None:
            raise ServiceError(f"{self.name} has not been started")
        return self._dir

    @property
    def log_path(self) -> Path:
        """The server's log file; every start appends to it."""
        return self.directory / f"{self.name}.log"

    @property
    def port(self) -> int:
        """The main listening port; fixed after the first start, kept across restarts."""
        if self._ports is None:
            raise ServiceError(f"{self.name} has not been started")
        return self._ports[0]

    @property
    @abc.abstractmethod
    def running(self) -> bool:
        """Whether the server process is up."""

    def start(self) -> None:
        """Start the server (no-op when running); the first start picks the ports."""
        if self.running:
            return
        if self._dir is None:
            self._locate_binaries()  # a missing binary fails before anything is created
            self._dir = Path(tempfile.mkdtemp(prefix=f"pumpwatch-{self.name}-"))
            self.log_path.touch()
            try:
                self._prepare()
            except ServiceError as err:
                output = _log_tail(self.log_path)
                self.close()  # nothing usable was created
                raise ServiceError(f"{err}\n--- {self.name} log ---\n{output}") from err
        if self._ports is not None:
            self._launch_checked(self._ports)
            return
        for _ in range(_START_ATTEMPTS):
            ports = free_ports(self.port_count)
            try:
                self._launch_checked(ports)
            except _PortInUse:
                continue
            self._ports = ports
            return
        raise ServiceError(f"{self.name}: chosen ports were taken {_START_ATTEMPTS} times in a row")

    def stop(self) -> None:
        """Stop the server cleanly (kill after `stop_timeout`); data and ports are kept."""
        if self.running:
            self._halt()

    def restart(self) -> None:
        """Stop and start again on the same port(s) with the same data."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and delete its temporary directory."""
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self._ports = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()  # the error already carries the log
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _launch_checked(self, ports: tuple[int, ...]) -> None:
        """Launch, turning a failure into `_PortInUse` or a ServiceError carrying the log."""
        offset = self.log_path.stat().st_size
        try:
            self._launch(ports, time.monotonic() + self.start_timeout)
        except ServiceError as err:
            if self.running:
                self._halt()
            output = _log_tail(self.log_path, offset)
            kind = _PortInUse if _PORT_IN_USE.search(output) else ServiceError
            raise kind(f"{err} (ports {ports})\n--- {self.log_path} ---\n{output}") from err

    @abc.abstractmethod
    def _locate_binaries(self) -> None:
        """Find the executables, raising ServiceError with the package name if missing."""

    @abc.abstractmethod
    def _prepare(self) -> None:
        """Create what every start needs (data dirs, ownership) in the new temp dir."""

    @abc.abstractmethod
    def _launch(self, ports: tuple[int, ...], deadline: float) -> None:
        """Start the server on `ports` and return once it serves; ServiceError otherwise."""

    @abc.abstractmethod
    def _halt(self) -> None:
        """Stop the running server."""


class _ChildService(_Service):
    """A server run as our child process, logging to its log file."""

    def __init__(self, start_timeout: float = 60.0, stop_timeout: float = 20.0) -> None:
        super().__init__(start_timeout, stop_timeout)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0  # where the current run's output starts in the log

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _launch(self, ports: tuple[int, ...], deadline: float) -> None:
        self._log_offset = self.log_path.stat().st_size
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._command(ports),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=_clean_env(),
                start_new_session=True,  # a terminal Ctrl-C reaches pytest, which stops us in order
            )
        proc = self._proc

        def ready() -> bool:
            return proc.poll() is not None or self._ready(ports)

        finished = _wait_for(ready, deadline)
        if proc.poll() is not None:
            raise ServiceError(f"{self.name} exited with status {proc.returncode} during start-up")
        if not finished:
            raise ServiceError(f"{self.name} did not become ready within {self.start_timeout:.0f}s")

    def _halt(self) -> None:
        proc = self._proc
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=self.stop_timeout)
        self._proc = None

    @abc.abstractmethod
    def _command(self, ports: tuple[int, ...]) -> list[str]:
        """The command line that runs the server on `ports`."""

    @abc.abstractmethod
    def _ready(self, ports: tuple[int, ...]) -> bool:
        """Whether the started server serves requests yet."""


class Mosquitto(_ChildService):
    """Mosquitto on a free loopback port, persistent (QoS1 sessions survive restart).

    Anonymous, unless given a `password_file` and an `acl_file` (as `pumpwatch broker-acl` writes
    them): then only those identities log in, each limited to its topics.
    """

    name = "mosquitto"

    def __init__(self, start_timeout: float = 30.0, stop_timeout: float = 20.0,
                 tls: tuple[Path, Path] | None = None, *, password_file: Path | None = None,
                 acl_file: Path | None = None) -> None:
        super().__init__(start_timeout, stop_timeout)
        self._binary: Path | None = None
        self.tls = tls  # (certificate, key) PEM files: the listener speaks TLS only
        self.password_file = password_file
        self.acl_file = acl_file

    @property
    def url(self) -> str:
        """The broker as an `mqtt://host:port` (or `mqtts://`) URL."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{HOST}:{self.port}"

    def url_for(self, username: str, password: str) -> str:
        """The broker's URL with a login."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{username}:{password}@{HOST}:{self.port}"

    def _locate_binaries(self) -> None:
        self._binary = find_binary("mosquitto", "mosquitto")

    def _prepare(self) -> None:
        if self.tls:  # copies in the broker's own directory, which its user can read
            for source in self.tls:
                shutil.copyfile(source, self.directory / source.name)
            self.tls = (self.directory / self.tls[0].name, self.directory / self.tls[1].name)
        if self.password_file is not None:
            self.password_file = self._copy(self.password_file, "passwd")
        if self.acl_file is not None:
            self.acl_file = self._copy(self.acl_file, "acl")
        if os.geteuid() == 0:
            # As root mosquitto drops to the `mosquitto` user, which must write the persistence file.
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam("mosquitto")
                files = (self.password_file, self.acl_file)
                owned = [self.directory, *(self.tls or ()), *(path for path in files if path)]
                for path in owned:
                    os.chown(path, entry.pw_uid, entry.pw_gid)

    def _copy(self, source: Path, name: str) -> Path:
        target = self.directory / name
        shutil.copyfile(source, target)
        target.chmod(0o600)  # mosquitto warns about a world-readable password file
        return target

    def _config(self, port: int) -> str:
        directory = self.directory
        stay_root = os.geteuid() == 0 and directory.stat().st_uid == 0  # no `mosquitto` user
        return "\n".join(
            [
                f"listener {port} {HOST}",
                *([f"certfile {self.tls[0]}", f"keyfile {self.tls[1]}"] if self.tls else []),
                f"allow_anonymous {'false' if self.password_file else 'true'}",
                *([f"password_file {self.password_file}"] if self.password_file else []),
                *([f"acl_file {self.acl_file}"] if self.acl_file else []),
                "persistence true",
                f"persistence_location {directory}/",  # mosquitto wants the trailing slash
                # Offline persistent sessions keep every QoS 1 message (the default drops past 1000),
                # as production brokers for PumpWatch are configured: the lossless tests rely on it.
                "max_queued_messages 10000000",
                "max_queued_bytes 0",
                # A collector acknowledges after its durable commit: allow enough messages in flight.
                "max_inflight_messages 1000",
                *(["user root"] if stay_root else []),
                "log_dest stderr",  # stderr goes to the log file
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "",
            ]
        )

    def _command(self, ports: tuple[int, ...]) -> list[str]:
        config = self.directory / "mosquitto.conf"
        config.write_text(self._config(ports[0]))
        assert self._binary is not None
        return [str(self._binary), "-c", str(config)]

    def _ready(self, ports: tuple[int, ...]) -> bool:
        # "running" is logged after the listener is bound, so a port held by someone else never counts.
        return " running" in _log_tail(self.log_path, self._log_offset) and _port_open(ports[0])


class InfluxDB(_ChildService):
    """InfluxDB 1.x (influxd) with its HTTP API and RPC service on free loopback ports."""

    name = "influxdb"
    port_count = 2  # HTTP API, RPC (backup/restore) service

    def __init__(self, start_timeout: float = 60.0, stop_timeout: float = 30.0) -> None:
        super().__init__(start_timeout, stop_timeout)
        self._binary: Path | None = None

    @property
    def url(self) -> str:
        """The HTTP API base URL, e.g. `http://127.0.0.1:PORT`."""
        return f"http://{HOST}:{self.port}"

    def _locate_binaries(self) -> None:
        self._binary = find_binary("influxd", "influxdb")

    def _prepare(self) -> None:
        pass  # influxd creates its meta, data and WAL directories itself

    def _config(self, http_port: int, rpc_port: int) -> str:
        directory = self.directory
        return f"""\
# Upstream spells the phone-home switch `reporting-disabled`; Debian patches it to `reporting-enabled`.
# influxd ignores unknown keys, so both are set.
reporting-disabled = true
reporting-enabled = false
bind-address = "{HOST}:{rpc_port}"

[meta]
  dir = "{directory}/meta"
  logging-enabled = false

[data]
  dir = "{directory}/data"
  wal-dir = "{directory}/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "{HOST}:{http_port}"
  log-enabled = false
  pprof-enabled = false

[continuous_queries]
  log-enabled = false

[logging]
  level = "warn"
  suppress-logo = true
"""

    def _command(self, ports: tuple[int, ...]) -> list[str]:
        config = self.directory / "influxdb.conf"
        config.write_text(self._config(*ports))
        assert self._binary is not None
        return [str(self._binary), "run", "-config", str(config)]

    def _ready(self, ports: tuple[int, ...]) -> bool:
        try:
            response = httpx.get(f"http://{HOST}:{ports[0]}/ping", timeout=1.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 204


class Postgres(_Service):
    """PostgreSQL (initdb + pg_ctl) on a free loopback port with trust auth and a `pumpwatch` database.

    PostgreSQL refuses to run as root, so as root every server command runs through
    `runuser -u postgres --` and the temp dir belongs to `postgres`. The server is started and stopped
    with pg_ctl rather than kept as a child: runuser would sit in between and SIGKILL the server two
    seconds after forwarding a SIGTERM.
    """

    name = "postgres"
    database = "pumpwatch"
    user = "postgres"

    def __init__(self, start_timeout: float = 60.0, stop_timeout: float = 30.0) -> None:
        super().__init__(start_timeout, stop_timeout)
        self._bin_dir: Path | None = None
        self._as_postgres: list[str] = []
        self._started = False
        self._database_created = False

    @property
    def bin_dir(self) -> Path:
        """The directory of the server's binaries; its psql matches the server version."""
        if self._bin_dir is None:
            self._bin_dir = postgres_bin_dir()
        return self._bin_dir

    @property
    def dsn(self) -> str:
        """The `pumpwatch` database as a libpq URL."""
        return f"postgresql://{self.user}@{HOST}:{self.port}/{self.database}"

    @property
    def running(self) -> bool:
        """Whether the postmaster is up (as far as this object started it)."""
        return self._started

    @property
    def _data_dir(self) -> Path:
        return self.directory / "data"

    def _locate_binaries(self) -> None:
        for tool in ("initdb", "pg_ctl", "pg_isready", "createdb", "psql"):
            if not (self.bin_dir / tool).is_file():
                raise ServiceError(
                    f"{self.bin_dir / tool} is missing; install the Debian package `postgresql`"
                )
        if os.geteuid() == 0:
            runuser = find_binary("runuser", "util-linux")
            try:
                pwd.getpwnam("postgres")
            except KeyError as err:
                raise ServiceError(
                    "running as root, but there is no `postgres` user to run the server as; "
                    "install the Debian package `postgresql`, which creates it"
                ) from err
            self._as_postgres = [str(runuser), "-u", "postgres", "--"]

    def _prepare(self) -> None:
        directory = self.directory
        (directory / "sock").mkdir()
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            for path in (directory, directory / "sock", self.log_path):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            self._check_reachable_by_postgres()
        self._run(
            [
                str(self.bin_dir / "initdb"),
                f"--pgdata={self._data_dir}",
                f"--username={self.user}",
                "--auth=trust",  # pg_hba: local socket + 127.0.0.1/::1 only
                "--encoding=UTF8",
                "--locale=C",  # independent of the machine's locales
                "--no-sync",  # throwaway test cluster
            ],
            as_postgres=True,
            timeout=self.start_timeout,
            what="initdb",
        )

    def _check_reachable_by_postgres(self) -> None:
        probe = subprocess.run(
            [*self._as_postgres, "test", "-w", str(self.directory)],
            cwd="/",
            capture_output=True,
            check=False,
            timeout=30,
        )
        if probe.returncode != 0:
            raise ServiceError(
                f"the postgres user cannot write {self.directory}; set TMPDIR to a directory "
                "every user can traverse (such as /tmp)"
            )

    def _launch(self, ports: tuple[int, ...], deadline: float) -> None:
        port = ports[0]
        options = [
            f"-p {port}",
            f"-k {shlex.quote(str(self.directory / 'sock'))}",  # unix socket stays in the temp dir
            f"-c listen_addresses={HOST}",
            "-c fsync=off",  # throwaway test data; clean shutdowns still checkpoint
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
        ]
        self._started = True  # from here a failure must stop whatever came up
        self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                f"--pgdata={self._data_dir}",
                f"--log={self.log_path}",
                f"--options={' '.join(options)}",
                "--wait",
                f"--timeout={max(1, int(deadline - time.monotonic()))}",
                "start",
            ],
            as_postgres=True,
            timeout=self.start_timeout + 10,
            what="pg_ctl start",
        )
        if not _wait_for(lambda: self._accepts(port), deadline, interval=0.1):
            raise ServiceError(f"postgres did not accept connections within {self.start_timeout:.0f}s")
        if not self._database_created:
            self._run(
                [str(self.bin_dir / "createdb"), "-h", HOST, "-p", str(port), "-U", self.user, self.database],
                as_postgres=False,
                timeout=30,
                what="createdb",
            )
            self._database_created = True

    def _accepts(self, port: int) -> bool:
        check = subprocess.run(
            [str(self.bin_dir / "pg_isready"), "-q", "-h", HOST, "-p", str(port), "-U", self.user],
            capture_output=True,
            check=False,
            timeout=10,
            env=_clean_env(),
        )
        return check.returncode == 0

    def _halt(self) -> None:
        try:
            self._run(
                [
                    str(self.bin_dir / "pg_ctl"),
                    f"--pgdata={self._data_dir}",
                    "--mode=fast",  # disconnect clients, roll back, checkpoint
                    "--wait",
                    f"--timeout={int(self.stop_timeout)}",
                    "stop",
                ],
                as_postgres=True,
                timeout=self.stop_timeout + 10,
                what="pg_ctl stop",
            )
        except (ServiceError, subprocess.TimeoutExpired):
            self._kill_postmaster()
        self._started = False

    def _kill_postmaster(self) -> None:
        """SIGKILL the postmaster named in postmaster.pid and wait for it to go away."""
        try:
            pid = int((self._data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return  # no pid file: not running
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

        def gone() -> bool:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                return True
            return stat.rpartition(")")[2].split()[0] == "Z"  # a zombie nobody reaped yet is gone too

        if not _wait_for(gone, time.monotonic() + self.stop_timeout):
            raise ServiceError(f"postgres (pid {pid}) survived SIGKILL")

    def _run(self, command: list[str], *, as_postgres: bool, timeout: float, what: str) -> None:
        """Run a tool to completion, output appended to the log; ServiceError on failure."""
        prefix = self._as_postgres if as_postgres else []
        with self.log_path.open("ab") as log:
            log.write(f"$ {shlex.join(command)}\n".encode())
            log.flush()
            result = subprocess.run(
                [*prefix, *command],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,  # the postgres user may not be allowed into our cwd
                env=_clean_env(),
                check=False,
                timeout=timeout,
            )
        if result.returncode != 0:
            raise ServiceError(f"{what} failed with status {result.returncode}")

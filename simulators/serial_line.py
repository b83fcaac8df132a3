"""A simulated RS-485 line: a pair of linked pseudo-terminals made by socat.

What is written to one end comes out of the other, byte for byte, as over a USB-RS485 adapter
and its cable: the collector opens one end as its serial port, a simulated bus of Modbus units
(`simulators.modbus_bus_server`) the other. Both ends are symbolic links to /dev/pts/N that socat
makes and removes; the simulator never replaces anything else at those paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from pathlib import Path

STARTUP = 10.0  # seconds socat may take to make both ends


class SerialLineError(RuntimeError):
    """The line cannot be made (socat missing, a path taken by something else)."""


def usable_path(path: Path) -> bool:
    """Whether a line end may be made at `path`: nothing there, or a stale link to a pseudo-terminal."""
    if not path.exists() and not path.is_symlink():
        return path.parent.is_dir() and os.access(path.parent, os.W_OK)
    return path.is_symlink() and os.readlink(path).startswith("/dev/pts/")


def can_make(path: Path) -> bool:
    """Whether a line end could be made at `path`, its folder made first if need be."""
    if path.exists() or path.is_symlink():
        return usable_path(path)
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    return parent.is_dir() and os.access(parent, os.W_OK)


class SerialLine:
    """Two linked pseudo-terminals: `collector_end` and `simulator_end` (paths of symbolic links)."""

    def __init__(self, collector_end: Path, simulator_end: Path) -> None:
        self.collector_end = collector_end
        self.simulator_end = simulator_end
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether socat is up."""
        return self._process is not None and self._process.poll() is None

    async def start(self) -> None:
        """Start socat and wait until both ends exist."""
        if self.running:
            return
        socat = shutil.which("socat")
        if socat is None:
            raise SerialLineError("a simulated serial bus needs socat (apt-get install socat)")
        for end in (self.collector_end, self.simulator_end):
            with contextlib.suppress(OSError):
                end.parent.mkdir(parents=True, exist_ok=True)
            if not usable_path(end):
                raise SerialLineError(f"cannot make a serial line end at {end}: the path is taken, "
                                      "or its folder cannot be written; choose a free path")
        self._process = subprocess.Popen(  # noqa: ASYNC220 - returns at once; we poll for the links
            [socat, "-d", "-d", f"pty,raw,echo=0,link={self.collector_end}",
             f"pty,raw,echo=0,link={self.simulator_end}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP
        while not (_is_pty_link(self.collector_end) and _is_pty_link(self.simulator_end)):
            if self._process.poll() is not None or loop.time() > deadline:
                await self.stop()
                raise SerialLineError(f"socat did not make the line {self.collector_end} <-> "
                                      f"{self.simulator_end}")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop socat (it removes both links)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 5)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        for end in (self.collector_end, self.simulator_end):
            if end.is_symlink() and os.readlink(end).startswith("/dev/pts/"):
                with contextlib.suppress(FileNotFoundError):
                    end.unlink()


def _is_pty_link(path: Path) -> bool:
    return path.is_symlink() and path.exists()

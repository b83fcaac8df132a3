"""A small HTTP server for a collector without the API (`pumpwatch collect`, `pumpwatch edge`).

`GET /metrics` renders the collector's Prometheus registry; `GET /healthz` answers JSON with the
state a supervisor or an operator wants (writer, buffer, and on an edge the uplink). It answers 200
while the process runs: an edge whose 4G link is down is working as designed (buffering), and a
restart would not bring the link back. Anything else is 404; requests are small and bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

MAX_REQUEST = 8192  # bytes of request line and headers
READ_WITHIN = 5.0  # seconds a client may take to send its request

HealthReport = Callable[[], dict[str, object]]


class MetricsServer:
    """Serves /metrics and /healthz on host:port (port 0: a free one, `port` tells which after start)."""

    def __init__(self, registry: CollectorRegistry, health: HealthReport, host: str = "127.0.0.1",
                 port: int = 9108) -> None:
        self.registry = registry
        self.health = health
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """Where it listens, e.g. http://127.0.0.1:9108."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen; OSError when the port is taken."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_WITHIN):
                head = await reader.readuntil(b"\r\n\r\n")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        if len(head) > MAX_REQUEST:
            await self._answer(writer, 431, "text/plain", b"request header too large\n")
            return
        parts = head.split(b"\r\n", 1)[0].split()
        method, path = (parts[0], parts[1].split(b"?", 1)[0]) if len(parts) >= 2 else (b"", b"")
        if method not in (b"GET", b"HEAD"):
            await self._answer(writer, 405, "text/plain", b"only GET\n")
        elif path == b"/metrics":
            body = await asyncio.to_thread(generate_latest, self.registry)
            await self._answer(writer, 200, CONTENT_TYPE_LATEST, body, head=method == b"HEAD")
        elif path == b"/healthz":
            body = json.dumps(self.health()).encode()
            await self._answer(writer, 200, "application/json", body, head=method == b"HEAD")
        else:
            await self._answer(writer, 404, "text/plain", b"not found: try /metrics or /healthz\n")

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, status: int, content_type: str, body: bytes,
                      head: bool = False) -> None:
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed",
                  431: "Request Header Fields Too Large"}[status]
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
        if not head:
            writer.write(body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

"""A lean keep-alive HTTP/1.1 GET client for load generation.

httpx spends about 5 ms of CPU per request here, more than the API spends answering it, so on two
shared cores a load generator built on it measures itself. This one writes the request line and
reads the status, `Content-Length` and body: a small fraction of that.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class HttpError(RuntimeError):
    """A response other than 200, or one this client cannot read."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def get(self, request: bytes) -> tuple[int, bytes, bool]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, keep_alive = None, True
        for line in head.lower().split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line[15:])
            elif line.startswith(b"transfer-encoding:"):
                raise HttpError("chunked responses are not supported")
            elif line == b"connection: close":
                keep_alive = False
        if length is None:
            raise HttpError(f"no Content-Length in {head[:200]!r}")
        return status, await self.reader.readexactly(length), keep_alive

    def close(self) -> None:
        self.writer.close()


class Browser:
    """One user's connections to one server: reused while idle, a new one when all are busy."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._headers = f"Host: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n\r\n"
        self._idle: list[_Connection] = []

    async def get(self, path: str) -> bytes:
        """The body of a 200 answer to GET `path`; HttpError otherwise."""
        if self._idle:
            conn = self._idle.pop()
        else:
            conn = _Connection(*await asyncio.open_connection(self.host, self.port))
        try:
            status, body, keep_alive = await conn.get(f"GET {path} HTTP/1.1\r\n{self._headers}".encode())
        except BaseException:
            conn.close()
            raise
        if keep_alive:
            self._idle.append(conn)
        else:
            conn.close()
        if status != 200:
            raise HttpError(f"GET {path}: {status} {body[:300]!r}")
        return body

    def close(self) -> None:
        """Close every idle connection."""
        while self._idle:
            self._idle.pop().close()

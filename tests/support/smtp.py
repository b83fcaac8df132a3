"""A real SMTP server on a free loopback port (aiosmtpd in its own thread) that records what arrives.

Plain, STARTTLS (`starttls=` a server context) or implicit TLS (`tls=`), with logins checked against
`login=(user, password)`. `replies` scripts the answers to the next DATA commands (then `250 OK`);
clearing `open` makes DATA wait until it is set again (a server that hangs).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from types import TracebackType
from typing import Any, cast

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Mail:
    """One mail the server accepted."""

    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool  # the session was encrypted (STARTTLS or implicit TLS)
    login: str | None  # who logged in, if anyone


class SmtpServer:
    """The server; use as a context manager, then `.port`, `.received`, `.data_commands`, `.logins`."""

    def __init__(self, *, tls: ssl.SSLContext | None = None, starttls: ssl.SSLContext | None = None,
                 login: tuple[str, str] | None = None) -> None:
        self.received: list[Mail] = []
        self.replies: list[str] = []
        self.data_commands = 0  # DATA commands seen, accepted or not
        self.logins: list[tuple[str, bool]] = []  # (user, accepted) of each AUTH
        self.open = threading.Event()
        self.open.set()
        self.port = 0
        self._tls = tls
        self._starttls = starttls
        self._login = login
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="smtp-test-server", daemon=True)
        self._started = threading.Event()
        self._server: asyncio.Server | None = None

    # --- aiosmtpd's hooks --------------------------------------------------------------------------

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.data_commands += 1
        if not self.open.is_set():
            await asyncio.to_thread(self.open.wait)
        if self.replies:
            return self.replies.pop(0)
        assert server.transport is not None
        auth = session.auth_data
        self.received.append(Mail(
            sender=str(envelope.mail_from), recipients=list(envelope.rcpt_tos),
            message=message_from_bytes(cast(bytes, envelope.content), policy=default),
            tls=server.transport.get_extra_info("ssl_object") is not None,
            login=auth.login.decode() if isinstance(auth, LoginPassword) else None))
        return "250 OK"

    def _authenticate(self, _server: SMTP, _session: Session, _envelope: Envelope, _mechanism: str,
                      auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        accepted = (user, password) == self._login
        self.logins.append((user, accepted))
        return AuthResult(success=accepted, handled=False, auth_data=auth_data)

    # --- running -----------------------------------------------------------------------------------

    def _protocol(self) -> SMTP:
        return SMTP(self, hostname="smtp.test", tls_context=self._starttls,
                    require_starttls=self._starttls is not None,
                    authenticator=self._authenticate if self._login else None,
                    auth_require_tls=self._tls is None and self._starttls is not None)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            self._loop.create_server(self._protocol, HOST, 0, ssl=self._tls))
        self.port = self._server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()
        self._server.close()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def __enter__(self) -> SmtpServer:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the test SMTP server did not start")
        return self

    def stop(self) -> None:
        """Stop listening: from now on connections are refused."""
        if self._thread.is_alive():
            self.open.set()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

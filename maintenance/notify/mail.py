"""The mail channel: SMTP (plain, STARTTLS or implicit TLS) with the standard library, in a worker thread.

Subject: the notice's headline (`【示范小区】紧急告警 / critical alarm raised`); body: its whole text,
UTF-8 (base64, so it passes any relay intact). A 4xx answer or a server away is worth retrying; a 5xx
answer (unknown recipient, refused login, STARTTLS missing) would come again.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid

from maintenance.notify.channels import DeliveryFailed
from maintenance.notify.notices import Notice
from pumpwatch.settings import EmailChannelSettings

log = logging.getLogger(__name__)


class EmailChannel:
    """Mails each notice to the configured recipients, one SMTP session per notice."""

    def __init__(self, name: str, settings: EmailChannelSettings) -> None:
        self.name = name
        self.settings = settings

    def message(self, notice: Notice) -> EmailMessage:
        """The mail of one notice."""
        msg = EmailMessage(policy=SMTP_POLICY)
        msg["Subject"] = notice.headline
        msg["From"] = self.settings.sender
        msg["To"] = ", ".join(self.settings.recipients)
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = make_msgid(domain=self.settings.sender.rpartition("@")[2])
        msg.set_content(notice.text, charset="utf-8", cte="base64")
        return msg

    async def send(self, notice: Notice) -> None:
        """Hand the notice's mail to the server."""
        await asyncio.to_thread(self._send, self.message(notice))

    def _send(self, msg: EmailMessage) -> None:
        cfg = self.settings
        context = (ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
                   if cfg.tls or cfg.starttls else None)
        try:
            smtp = (smtplib.SMTP_SSL(cfg.host, cfg.server_port, timeout=cfg.timeout, context=context)
                    if cfg.tls else smtplib.SMTP(cfg.host, cfg.server_port, timeout=cfg.timeout))
            with smtp:
                if cfg.starttls:
                    smtp.starttls(context=context)
                if cfg.username is not None and cfg.password is not None:
                    smtp.login(cfg.username, cfg.password.get_secret_value())
                refused = smtp.send_message(msg, from_addr=cfg.sender, to_addrs=cfg.recipients)
        except smtplib.SMTPRecipientsRefused as err:  # every recipient refused
            codes = [code for code, _ in err.recipients.values()]
            raise DeliveryFailed(f"every recipient refused: {_answers(err.recipients)}",
                                 retry=any(code < 500 for code in codes)) from None
        except smtplib.SMTPNotSupportedError as err:  # e.g. no STARTTLS offered: it will not be next time
            raise DeliveryFailed(f"{type(err).__name__}: {err}", retry=False) from None
        except smtplib.SMTPResponseException as err:
            text = err.smtp_error.decode(errors="replace") if isinstance(err.smtp_error, bytes) \
                else str(err.smtp_error)
            raise DeliveryFailed(f"SMTP {err.smtp_code} {text[:200]}", retry=err.smtp_code < 500) from None
        except (smtplib.SMTPException, OSError) as err:  # away, disconnected, timed out, TLS failed
            raise DeliveryFailed(f"{type(err).__name__}: {err}") from None
        if refused:  # the others have it: sending again would mail them twice
            log.warning("mail channel %s: some recipients refused: %s", self.name, _answers(refused))


def _answers(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address}: {code} {reply.decode(errors='replace')[:100]}"
                     for address, (code, reply) in recipients.items())

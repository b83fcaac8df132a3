"""The mail channel against a real SMTP server (aiosmtpd on loopback): what arrives, TLS, logins, refusals."""

from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from maintenance.models import Alarm
from maintenance.notify import Notice, Notifier
from pumpwatch.backoff import Backoff
from pumpwatch.settings import EmailChannelSettings, NotifySettings
from tests.support.smtp import HOST, SmtpServer

SENDER = "pumpwatch@example.com"
RECIPIENTS = ["duty@example.com", "chief@example.com"]
LOGIN = ("pumpwatch", "s3cret-pass")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, and a certificate for 127.0.0.1 signed by it."""
    d = tmp_path_factory.mktemp("smtp-tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=PumpWatch test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={HOST}", "-keyout", "server.key",
             "-out", "server.csr", cwd=d)
    (d / "san.cnf").write_text(f"subjectAltName=IP:{HOST}\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.cnf", "-out", "server.pem", cwd=d)
    return d


def server_context(certificates: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates / "server.pem", certificates / "server.key")
    return context


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer(login=LOGIN) as server:
        yield server


def notifier(server: SmtpServer, **channel: Any) -> Notifier:
    settings = NotifySettings(channels=[EmailChannelSettings(host=HOST, port=server.port, sender=SENDER,
                                                             recipients=RECIPIENTS, timeout=10, **channel)])
    return Notifier(settings, CollectorRegistry(), "Asia/Shanghai", "示范小区",
                    pauses=lambda: Backoff(first=0.01, cap=0.04, jitter=0.0))


def count(n: Notifier, outcome: str) -> float:
    """pumpwatch_notifications_total{channel="email", outcome}."""
    return next(sample.value for metric in n.told.collect() for sample in metric.samples
                if sample.name == "pumpwatch_notifications_total"
                and sample.labels == {"channel": "email", "outcome": outcome})


async def until(done: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not done():
            await asyncio.sleep(0.01)


async def deliver(n: Notifier, outcomes: int) -> None:
    """Run the notifier until `outcomes` notices were sent or given up."""
    runner = asyncio.create_task(n.run())
    try:
        await until(lambda: count(n, "sent") + count(n, "failed") >= outcomes)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert count(n, "sent") + count(n, "failed") == outcomes


def dry_run_alarm() -> Alarm:
    started = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    return Alarm(id=7, asset="dom-p1", alarm_type="dry_run", room="dom", severity="critical",
                 peak_severity="critical", started_at=started, updated_at=started, last_value=0.05,
                 message_zh="一号生活泵干转", message_en="Domestic pump 1 running dry")


def a_notice(text: str = "【示范小区】测试 / test") -> Notice:
    return Notice(text, {"kind": "test"})


async def test_an_alarm_is_mailed_with_its_headline_as_subject_and_the_chinese_intact(
        smtp: SmtpServer) -> None:
    n = notifier(smtp)
    n.alarm_changed("raised", dry_run_alarm())
    await deliver(n, 1)
    assert count(n, "sent") == 1
    [mail] = smtp.received
    assert (mail.sender, mail.recipients, mail.tls, mail.login) == (SENDER, RECIPIENTS, False, None)
    msg = mail.message
    assert msg["Subject"] == "【示范小区】紧急告警 / critical alarm raised"
    assert msg["From"] == SENDER
    assert msg["To"] == "duty@example.com, chief@example.com"
    assert msg["Message-ID"].endswith("@example.com>")
    assert parsedate_to_datetime(msg["Date"]).tzinfo is not None
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    body = msg.get_content()
    assert "一号生活泵干转 / Domestic pump 1 running dry" in body
    assert "泵房 room: dom  设备 asset: dom-p1" in body
    assert "时间 at: 2026-01-01 08:30  告警 #7" in body  # the site's time zone


async def test_an_alarm_under_the_channels_threshold_is_not_mailed(smtp: SmtpServer) -> None:
    n = notifier(smtp, min_severity="critical")
    alarm = dry_run_alarm()
    alarm.severity = "major"
    n.alarm_changed("raised", alarm)
    assert n.pending == 0


async def test_starttls_then_login(certificates: Path) -> None:
    with SmtpServer(starttls=server_context(certificates), login=LOGIN) as server:
        n = notifier(server, starttls=True, ca_file=certificates / "ca.pem", username=LOGIN[0],
                     password=SecretStr(LOGIN[1]))
        n.tell(a_notice())
        await deliver(n, 1)
    assert count(n, "sent") == 1
    assert server.logins == [(LOGIN[0], True)]
    [mail] = server.received
    assert (mail.tls, mail.login) == (True, LOGIN[0])
    assert mail.message["Subject"] == "【示范小区】测试 / test"


async def test_implicit_tls(certificates: Path) -> None:
    with SmtpServer(tls=server_context(certificates)) as server:
        n = notifier(server, tls=True, ca_file=certificates / "ca.pem")
        n.tell(a_notice())
        await deliver(n, 1)
    assert count(n, "sent") == 1
    assert [mail.tls for mail in server.received] == [True]


async def test_a_server_that_is_not_trusted_gets_nothing(certificates: Path) -> None:
    with SmtpServer(starttls=server_context(certificates)) as server:
        n = notifier(server, starttls=True)  # the system's CAs: the test CA is not among them
        n.tell(a_notice())
        await deliver(n, 1)
    assert count(n, "failed") == 1
    assert server.data_commands == 0


async def test_a_server_that_requires_starttls_refuses_a_plain_session_for_good(
        certificates: Path, caplog: pytest.LogCaptureFixture) -> None:
    with SmtpServer(starttls=server_context(certificates)) as server:
        n = notifier(server)  # no starttls
        n.tell(a_notice())
        await deliver(n, 1)
    assert count(n, "failed") == 1
    assert server.data_commands == 0
    assert "attempt 1 of 3 failed (SMTP 530" in caplog.text
    assert "attempt 2 of 3" not in caplog.text


async def test_a_wrong_password_is_refused_once_and_not_retried(
        smtp: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    n = notifier(smtp, username=LOGIN[0], password=SecretStr("wrong-pass"))
    n.tell(a_notice())
    await deliver(n, 1)
    assert count(n, "failed") == 1
    assert smtp.logins  # smtplib tries each mechanism the server offers, in one session
    assert all(login == (LOGIN[0], False) for login in smtp.logins)
    assert smtp.received == []
    assert "attempt 1 of 3 failed (SMTP 535" in caplog.text
    assert "attempt 2 of 3" not in caplog.text
    assert "wrong-pass" not in caplog.text


async def test_a_busy_server_is_retried_and_a_refusal_is_not(smtp: SmtpServer) -> None:
    n = notifier(smtp)
    smtp.replies = ["451 4.3.0 try again later"] * 3 + ["550 5.7.1 relaying denied"]  # then 250
    for text in ("busy", "refused", "taken"):
        n.tell(a_notice(text))
    await deliver(n, 3)
    assert smtp.data_commands == 3 + 1 + 1
    assert (count(n, "sent"), count(n, "failed")) == (1, 2)
    assert [mail.message["Subject"] for mail in smtp.received] == ["taken"]


async def test_a_server_that_is_away_is_retried_then_counted_failed(
        smtp: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="maintenance.notify")
    n = notifier(smtp)
    smtp.stop()
    n.tell(a_notice())
    await deliver(n, 1)
    assert count(n, "failed") == 1
    for attempt in (1, 2, 3):
        assert f"attempt {attempt} of 3 failed (ConnectionRefusedError" in caplog.text

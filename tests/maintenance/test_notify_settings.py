"""Notification settings from the environment: channels as JSON, the webhook shorthand, readable errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError

from pumpwatch.settings import EmailChannelSettings, JsonWebhookSettings, RobotChannelSettings, Settings

ROBOT_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=robot-key-123"


def settings(monkeypatch: pytest.MonkeyPatch, channels: list[dict[str, Any]] | None = None,
             **notify: str) -> Settings:
    if channels is not None:
        monkeypatch.setenv("PUMPWATCH_NOTIFY__CHANNELS", json.dumps(channels, ensure_ascii=False))
    for key, value in notify.items():
        monkeypatch.setenv(f"PUMPWATCH_NOTIFY__{key.upper()}", value)
    return Settings()


def test_channels_come_from_the_environment_as_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, [
        {"type": "robot", "url": ROBOT_URL},
        {"type": "email", "host": "smtp.example.com", "starttls": True, "username": "pw",
         "password": "mail-pass-456", "sender": "pumpwatch@example.com", "recipients": ["duty@example.com"],
         "min_severity": "critical"},
        {"type": "json", "name": "ops-hook", "url": "https://ops.example.com/hook"}],
        min_severity="minor", queue_limit="50")
    robot, mail, hook = s.notify.configured_channels()
    assert isinstance(robot, RobotChannelSettings)
    assert isinstance(mail, EmailChannelSettings)
    assert isinstance(hook, JsonWebhookSettings)
    assert [robot.name, mail.name, hook.name] == ["robot", "email", "ops-hook"]
    assert robot.url.get_secret_value() == ROBOT_URL
    assert (mail.host, mail.server_port, mail.starttls, mail.tls) == ("smtp.example.com", 587, True, False)
    assert mail.password is not None
    assert mail.password.get_secret_value() == "mail-pass-456"
    assert (mail.min_severity, robot.min_severity, s.notify.min_severity) == ("critical", None, "minor")
    assert s.notify.queue_limit == 50
    shown = repr(s)
    assert "robot-key-123" not in shown
    assert "mail-pass-456" not in shown


def test_the_webhook_url_shorthand_is_one_more_channel_told_first(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings(monkeypatch).notify.configured_channels() == []
    only = settings(monkeypatch, webhook_url=ROBOT_URL).notify.configured_channels()
    assert [(c.type, c.name) for c in only] == [("robot", "robot")]
    both = settings(monkeypatch, [{"type": "robot", "url": "https://oapi.dingtalk.com/robot/send?a=1"}],
                    webhook_url=ROBOT_URL, style="json").notify.configured_channels()
    assert [(c.type, c.name) for c in both] == [("json", "json"), ("robot", "robot")]
    robots = settings(monkeypatch, [{"type": "robot", "url": "https://oapi.dingtalk.com/robot/send?a=1"}],
                      webhook_url=ROBOT_URL, style="robot").notify.configured_channels()
    assert [c.name for c in robots] == ["robot", "robot-2"]
    assert isinstance(robots[0], RobotChannelSettings)
    assert robots[0].url.get_secret_value() == ROBOT_URL


MAIL = {"type": "email", "host": "smtp.example.com", "sender": "pumpwatch@example.com",
        "recipients": ["duty@example.com"]}


@pytest.mark.parametrize(("channels", "where", "problem"), [
    ([{"type": "smtp", "password": "secret-1"}], "notify.channels.0",
     "does not match any of the expected tags: 'robot', 'json', 'email'"),
    ([{"url": "https://a.example.com/?key=secret-1"}], "notify.channels.0",
     "Unable to extract tag using discriminator 'type'"),
    ([{"type": "robot", "url": "ftp://a.example.com/?key=secret-1"}], "notify.channels.0.robot.url",
     "must be an http:// or https:// URL"),
    ([{"type": "robot", "url": "https://a.example.com/?key=secret-1", "min_severity": "urgent"}],
     "notify.channels.0.robot.min_severity", "Input should be 'critical', 'major', 'minor' or 'warning'"),
    ([{**MAIL, "password": "secret-1", "recipients": []}], "notify.channels.0.email.recipients",
     "at least 1 item"),
    ([{**MAIL, "recipient": ["duty@example.com"], "password": "secret-1", "username": "u"}],
     "notify.channels.0.email.recipient", "Extra inputs are not permitted"),
    ([{**MAIL, "password": "secret-1"}], "notify.channels.0.email",
     "username and password go together"),
    ([{**MAIL, "starttls": True, "tls": True, "password": "secret-1", "username": "u"}],
     "notify.channels.0.email", "starttls and tls exclude each other"),
    ([{**MAIL, "port": 0, "password": "secret-1", "username": "u"}], "notify.channels.0.email.port",
     "greater than or equal to 1"),
    ([{"type": "robot", "url": "https://a.example.com/?key=secret-1", "name": "ops"},
      {"type": "json", "url": "https://b.example.com/", "name": "ops"}], "notify",
     "two notification channels are named 'ops'"),
])
def test_bad_channels_are_refused_with_where_and_why_and_no_secret(
        monkeypatch: pytest.MonkeyPatch, channels: list[dict[str, Any]], where: str, problem: str) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(monkeypatch, channels)
    message = str(refused.value)
    assert f"\n{where}\n" in message
    assert problem in message
    assert "secret-1" not in message


def test_a_channel_list_that_is_not_json_is_refused_without_echoing_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUMPWATCH_NOTIFY__CHANNELS", '[{"type": "robot", "url": "https://a/?key=secret-1"')
    with pytest.raises(SettingsError, match='error parsing value for field "notify"') as refused:
        Settings()
    assert "secret-1" not in str(refused.value)

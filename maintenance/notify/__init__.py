"""Notifications: serious alarms and late tasks, told on every configured channel.

Property managers live in WeCom / DingTalk groups; both take a group robot's
`{"msgtype": "text", "text": {"content": ...}}`. Other systems take the structured notice as JSON, and
people off the chat groups get it by mail. Only changes this process made are told (the replica whose
transaction raised an alarm, the one that took an escalation), so two API replicas never tell twice.

- `notices`: what is told and its bilingual text and data (no I/O),
- `channels`: the `Channel` protocol and `DeliveryFailed`,
- `webhook`: the group robot and the JSON webhook, `mail`: SMTP,
- `notifier`: the `Notifier`, one bounded queue and one delivery loop per channel.
"""

from maintenance.notify.channels import Channel, DeliveryFailed
from maintenance.notify.notices import Notice, NoticeFormatter
from maintenance.notify.notifier import Notifier

__all__ = ["Channel", "DeliveryFailed", "Notice", "NoticeFormatter", "Notifier"]

"""The notifier: every configured channel gets its own bounded queue and delivery loop.

Policy, per channel: notices wait in a queue of `queue_limit` (when full the oldest is dropped and
counted); each is sent up to `ATTEMPTS` times with the project's backoff between attempts (1 s, 2 s) while
the failure is worth retrying, then counted as failed. A channel that is down or slow only holds up its
own queue: every other channel's notices go on. Counter:
`pumpwatch_notifications_total{channel, outcome=sent|failed|dropped}`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

from maintenance.models import Alarm
from maintenance.notify.channels import Channel, DeliveryFailed
from maintenance.notify.mail import EmailChannel
from maintenance.notify.notices import Notice, NoticeFormatter
from maintenance.notify.webhook import JsonWebhookChannel, RobotChannel
from maintenance.task_flow import Escalation
from pumpwatch.backoff import Backoff
from pumpwatch.settings import AnyChannelSettings, EmailChannelSettings, NotifySettings, RobotChannelSettings
from pumpwatch.site import Severity

log = logging.getLogger(__name__)

ATTEMPTS = 3
OUTCOMES = ("sent", "failed", "dropped")


def retry_pauses() -> Backoff:
    """The pauses between attempts of one notice: 1 s, then 2 s (no jitter: few notices, no herd)."""
    return Backoff(first=1.0, cap=60.0, jitter=0.0)


def channel_for(settings: AnyChannelSettings) -> Channel:
    """The channel a channel setting describes (its name already resolved)."""
    name = settings.name or settings.type
    if isinstance(settings, RobotChannelSettings):
        return RobotChannel(name, settings.url)
    if isinstance(settings, EmailChannelSettings):
        return EmailChannel(name, settings)
    return JsonWebhookChannel(name, settings.url)


class Outbox:
    """One channel's queue and delivery loop."""

    def __init__(self, channel: Channel, min_severity: Severity, limit: int, told: Counter,
                 pauses: Backoff) -> None:
        self.channel = channel
        self.min_severity = min_severity
        self.limit = limit
        self.queue: deque[Notice] = deque()
        self._told = told
        self._pauses = pauses
        self._ready = asyncio.Event()

    def put(self, notice: Notice) -> None:
        """Queue a notice this channel tells; when full, drop the oldest."""
        if not notice.told_from(self.min_severity):
            return
        if len(self.queue) >= self.limit:
            self.queue.popleft()
            self._count("dropped")
            log.warning("notification queue of %s full (%d): the oldest notice was dropped",
                        self.channel.name, self.limit)
        self.queue.append(notice)
        self._ready.set()

    async def run(self) -> None:
        """Send queued notices one by one until cancelled."""
        while True:
            while not self.queue:
                self._ready.clear()
                await self._ready.wait()
            await self._deliver(self.queue.popleft())

    async def _deliver(self, notice: Notice) -> None:
        self._pauses.reset()
        name = self.channel.name
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self.channel.send(notice)
            except DeliveryFailed as err:
                log.warning("notification to %s: attempt %d of %d failed (%s)", name, attempt, ATTEMPTS,
                            err.reason)
                if err.retry and attempt < ATTEMPTS:
                    await asyncio.sleep(self._pauses.next())
                    continue
            except Exception:  # a fault of the channel itself: never let it stop the loop
                log.exception("notification to %s failed", name)
            else:
                self._count("sent")
                return
            break
        self._count("failed")
        log.error("notification to %s given up after attempt %d of %d: %s", name, attempt, ATTEMPTS,
                  notice.headline)

    def _count(self, outcome: str) -> None:
        self._told.labels(channel=self.channel.name, outcome=outcome).inc()


class Notifier:
    """Formats notices and hands them to every configured channel; `run` delivers until cancelled."""

    def __init__(self, settings: NotifySettings, registry: CollectorRegistry, timezone: str,
                 site_name: str, *, pauses: Callable[[], Backoff] = retry_pauses,
                 estate_names: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.formatter = NoticeFormatter(timezone, site_name, estate_names)
        self.told = Counter("pumpwatch_notifications_total", "Notifications, by channel and outcome",
                            ["channel", "outcome"], registry=registry)
        self.outboxes: dict[str, Outbox] = {}
        for channel_settings in settings.configured_channels():
            channel = channel_for(channel_settings)
            min_severity = Severity(channel_settings.min_severity or settings.min_severity)
            self.outboxes[channel.name] = Outbox(channel, min_severity, settings.queue_limit, self.told,
                                                 pauses())
            for outcome in OUTCOMES:
                self.told.labels(channel=channel.name, outcome=outcome)  # shown as 0 from the start

    @property
    def enabled(self) -> bool:
        """Whether any channel is configured."""
        return bool(self.outboxes)

    @property
    def pending(self) -> int:
        """Notices waiting, over all channels."""
        return sum(len(outbox.queue) for outbox in self.outboxes.values())

    def alarm_changed(self, change: str | None, alarm: Alarm | None) -> None:
        """An alarm change this process made: told when raised, back or escalated at a channel's threshold."""
        if self.enabled and (notice := self.formatter.alarm(change, alarm)) is not None:
            self.tell(notice)

    def escalated(self, step: Escalation) -> None:
        """One SLA escalation step of a task: told on every channel."""
        if self.enabled:
            self.tell(self.formatter.escalation(step))

    def tell(self, notice: Notice) -> None:
        """Queue a notice on every channel that tells it."""
        for outbox in self.outboxes.values():
            outbox.put(notice)

    async def run(self) -> None:
        """Deliver on every channel, each in its own task, until cancelled."""
        if not self.outboxes:
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as tasks:
            for name, outbox in self.outboxes.items():
                tasks.create_task(outbox.run(), name=f"notify-{name}")

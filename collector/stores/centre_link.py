"""The edge's one MQTT connection to the centre's broker: publish and await the PUBACK, measure the clock.

Everything an edge sends to the centre goes through here: reading batches (the uplink store), alarm
events (the alarm forwarder) and clock requests. `publish` returns once the broker acknowledged the
message (QoS 1 PUBACK) and raises `StoreUnavailable` when the link is down, drops before the PUBACK,
or no PUBACK comes within the timeout; nothing is queued in paho's memory while the link is down.

The link counts as ready only once the centre answered a clock request on this connection: an
answer proves that a centre collector reads this edge's topics (a broker whose ACL silently drops
the edge's messages would still acknowledge them, and batches would be lost). The clock request is
NTP-style (`pumpwatch.edge_wire.ClockSample`): the offset is centre minus edge, its error at most
half the round trip.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from collector.metrics import CollectorMetrics
from pumpwatch.edge_wire import (
    ClockSample,
    decode_time_reply,
    encode_time_request,
    time_reply_topic,
    time_topic,
)
from pumpwatch.errors import StoreUnavailable
from pumpwatch.mqttclient import new_client, start_client, stop_client
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.wire import WireError

log = logging.getLogger(__name__)

UNANSWERED_RETRY = 5.0  # seconds between clock requests while the centre has not answered yet


class CentreLink:
    """One paho client to the centre's broker, shared by the uplink, the alarm forwarder and the clock."""

    def __init__(self, broker: BrokerAddress, edge_id: str, client_id: str, metrics: CollectorMetrics,
                 *, keepalive: int = 30, clock_interval: float = 60.0) -> None:
        self.broker = broker
        self.edge_id = edge_id
        self.metrics = metrics
        self.keepalive = keepalive
        self.clock_interval = clock_interval
        self.offset: float | None = None  # centre minus edge, seconds (the latest measurement)
        self.round_trip: float | None = None
        self.connected = False
        self.answered = False  # the centre answered a clock request on this connection
        self._reply_topic = time_reply_topic(edge_id)
        self._lock = threading.Lock()
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._acked: set[int] = set()  # PUBACKs that came before `publish` registered its future
        self._unawaited: set[int] = set()  # QoS 0 clock requests and sends given up: nobody waits
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()
        self._clock_task: asyncio.Task[None] | None = None
        client = new_client(broker, client_id, queue_limit=1000)
        client.max_inflight_messages_set(20)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self.client = client

    @property
    def ready(self) -> bool:
        """Connected, and the centre answered on this connection: a publish has a chance."""
        return self.connected and self.answered

    async def start(self) -> None:
        """Connect in the background (paho reconnects by itself) and keep measuring the clock."""
        self._loop = asyncio.get_running_loop()
        start_client(self.client, self.broker, self.keepalive)
        self._clock_task = asyncio.create_task(self._measure_clock(), name="edge-clock")

    async def stop(self) -> None:
        """Disconnect; a publish still waiting fails (its message stays in the durable buffer)."""
        if self._clock_task is not None:
            self._clock_task.cancel()
            await asyncio.gather(self._clock_task, return_exceptions=True)
            self._clock_task = None
        await asyncio.to_thread(stop_client, self.client)
        self._fail_waiting("the uplink stopped")

    async def wait_ready(self, within: float) -> bool:
        """Wait until the link is ready, at most `within` seconds; whether it is."""
        if self.ready:
            return True
        self._ready.clear()
        try:
            async with asyncio.timeout(within):
                await self._ready.wait()
        except TimeoutError:
            pass
        return self.ready

    async def publish(self, topic: str, payload: bytes, ack_within: float) -> None:
        """Publish at QoS 1 and return on the broker's PUBACK; `StoreUnavailable` otherwise."""
        if not self.ready:
            raise StoreUnavailable(f"uplink to {self.broker} is "
                                   + ("waiting for the centre's answer" if self.connected else "down"))
        loop = asyncio.get_running_loop()
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            with self._lock:  # paho may still send it after a reconnect: its PUBACK is no one's
                self._unawaited.add(info.mid)
            raise StoreUnavailable(f"uplink publish failed: {mqtt.error_string(info.rc)}")
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if info.mid in self._acked:
                self._acked.discard(info.mid)
                return
            self._waiting[info.mid] = future
        try:
            async with asyncio.timeout(ack_within):
                await future
        except TimeoutError:
            raise StoreUnavailable(f"no PUBACK from {self.broker} within {ack_within:g} s") from None
        finally:
            with self._lock:
                if self._waiting.pop(info.mid, None) is not None:  # given up: a late PUBACK is no one's
                    self._unawaited.add(info.mid)
                    if len(self._unawaited) > 10_000:
                        self._unawaited.clear()

    # --- clock ------------------------------------------------------------------------------------

    async def _measure_clock(self) -> None:
        while True:
            if self.connected:
                self._request_time()
            await asyncio.sleep(self.clock_interval if self.answered else UNANSWERED_RETRY)

    def _take_sample(self, sample: ClockSample) -> None:
        if sample.round_trip < 0 or sample.t0 > sample.t3:
            return  # an answer to a request of another run, or a clock stepped meanwhile
        self.offset = sample.offset
        self.round_trip = sample.round_trip
        self.metrics.clock_offset.set(sample.offset)
        first = not self.answered
        self.answered = True
        self._signal_ready()
        if first:
            log.info("centre answered: uplink ready; clock offset %+.3f s (round trip %.3f s)",
                     sample.offset, sample.round_trip)

    # --- paho callbacks (network thread) ------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                    _properties: Any) -> None:
        if reason.is_failure:
            log.warning("centre broker %s refused the edge: %s", self.broker, reason)
            return
        client.subscribe(self._reply_topic, qos=0)
        self.connected = True
        self.answered = False
        self.metrics.uplink_connected.set(1)
        log.info("uplink connected to %s", self.broker)
        self._request_time()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                       _properties: Any) -> None:
        if self.connected:
            log.warning("uplink to %s lost (%s); readings wait in the durable buffer", self.broker, reason)
        self.connected = False
        self.answered = False
        self.metrics.uplink_connected.set(0)
        self._fail_waiting(f"uplink to {self.broker} lost before the PUBACK")

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any,
                    _properties: Any) -> None:
        with self._lock:
            if mid in self._unawaited:
                self._unawaited.discard(mid)
                return
            future = self._waiting.pop(mid, None)
            if future is None:
                self._acked.add(mid)  # before `publish` registered its future: it takes it at once
                return
        self._settle(future, None)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic != self._reply_topic:
            return
        try:
            sample = decode_time_reply(message.payload, time.time())
        except WireError as err:
            log.warning("malformed clock reply from the centre: %s", err)
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._take_sample, sample)

    # --- helpers ----------------------------------------------------------------------------------

    def _request_time(self) -> None:
        """Send a clock request (QoS 0: a lost one is simply asked again)."""
        info = self.client.publish(time_topic(self.edge_id), encode_time_request(time.time()), qos=0)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return
        with self._lock:
            if info.mid in self._acked:
                self._acked.discard(info.mid)
            else:
                self._unawaited.add(info.mid)

    def _fail_waiting(self, why: str) -> None:
        with self._lock:
            waiting = list(self._waiting.values())
            self._unawaited.update(self._waiting)  # paho sends them again after a reconnect
            self._waiting.clear()
        for future in waiting:
            self._settle(future, StoreUnavailable(why))

    def _settle(self, future: asyncio.Future[None], error: Exception | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def settle() -> None:
            if future.done():
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

        loop.call_soon_threadsafe(settle)

    def _signal_ready(self) -> None:
        self._ready.set()

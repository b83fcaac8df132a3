"""An in-process MQTT broker (amqtt) for running everything on one machine with no setup."""

from __future__ import annotations

import logging
import socket
from typing import Any

from amqtt.broker import Broker

from pumpwatch.mqtturl import BrokerAddress


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_or_free(port: int, host: str = "127.0.0.1") -> int:
    """`port` if it can be bound on `host` now, else a free one (0 always gives a free one)."""
    if port:
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                return free_port(host)
            return port
    return free_port(host)


class EmbeddedBroker:
    """amqtt listening on host:port (port 0 picks a free one); anonymous, loopback by default."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._broker: Any = None

    @property
    def address(self) -> BrokerAddress:
        """Where clients connect."""
        return BrokerAddress(self.host, self.port)

    async def start(self) -> None:
        """Start listening."""
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {
                "allow_anonymous": True}},
        }
        self._broker = Broker(config)
        await self._broker.start()

    async def stop(self) -> None:
        """Stop listening and drop sessions."""
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None

"""Broker addresses given as URLs: mqtt://user:password@host:1883, mqtts:// for TLS."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class BrokerAddress:
    """Where an MQTT broker listens and how to log in."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None  # the CA of the broker's certificate; None: the system's CAs

    @classmethod
    def parse(cls, url: str, ca_file: str | Path | None = None) -> BrokerAddress:
        """Parse mqtt:// or mqtts:// URLs; ValueError with a readable message otherwise."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp"):
            raise ValueError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"broker URL {url!r}: no host")
        try:
            port = parts.port
        except ValueError as err:
            raise ValueError(f"broker URL {url!r}: bad port") from err
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            ca_file=str(ca_file) if ca_file is not None else None,
        )

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"

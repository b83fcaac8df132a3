"""MQTT over TLS with a site's own CA: every role's client verifies the broker's certificate."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from pumpwatch.mqttclient import new_client, start_client, stop_client
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.settings import Settings
from tests.support.services import HOST, Mosquitto


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a broker certificate for 127.0.0.1 signed by it; readable by the broker's user."""
    d = tmp_path_factory.mktemp("tls")
    d.chmod(0o755)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=PumpWatch test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={HOST}", "-keyout", "broker.key",
             "-out", "broker.csr", cwd=d)
    (d / "san.cnf").write_text(f"subjectAltName=IP:{HOST}\n")
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.cnf", "-out", "broker.pem", cwd=d)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Someone else",
             "-keyout", "other.key", "-out", "other.pem", cwd=d)
    for path in d.iterdir():
        path.chmod(0o644)
    return d


@pytest.fixture(scope="module")
def tls_broker(certificates: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tls=(certificates / "broker.pem", certificates / "broker.key"))
    broker.start()
    yield broker
    broker.stop()


def _round_trip(broker: BrokerAddress, topic: str, within: float = 10.0) -> bytes | None:
    """Subscribe and publish through `broker`; the payload that came back, or None if it never connects."""
    got: list[bytes] = []
    subscribed, received = threading.Event(), threading.Event()
    sub = new_client(broker, f"{topic}-sub")
    sub.on_connect = lambda c, *_a: c.subscribe(topic, qos=1)
    sub.on_subscribe = lambda *_a: subscribed.set()

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        got.append(bytes(message.payload))
        received.set()

    sub.on_message = on_message
    start_client(sub, broker)
    try:
        if not subscribed.wait(within):
            return None
        pub = new_client(broker, f"{topic}-pub")
        start_client(pub, broker)
        try:
            pub.publish(topic, "0.42 MPa", qos=1)
            received.wait(10)
        finally:
            stop_client(pub)
    finally:
        stop_client(sub)
    return got[0] if got else None


def test_clients_trust_the_broker_through_the_configured_ca(tls_broker: Mosquitto, certificates: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUMPWATCH_MQTT__URL", tls_broker.url)
    monkeypatch.setenv("PUMPWATCH_MQTT__CA_FILE", str(certificates / "ca.pem"))
    settings = Settings()
    assert settings.mqtt.url is not None
    broker = BrokerAddress.parse(settings.mqtt.url, settings.mqtt.ca_file)
    assert broker.tls
    assert broker.port == tls_broker.port
    assert _round_trip(broker, "tls-test/ok") == b"0.42 MPa"


@pytest.mark.e2e  # Waits out two refused connections (6 s).
def test_a_broker_certificate_from_another_ca_is_refused(tls_broker: Mosquitto, certificates: Path) -> None:
    stranger = BrokerAddress.parse(tls_broker.url, certificates / "other.pem")
    assert _round_trip(stranger, "tls-test/other-ca", within=3) is None
    system_cas = BrokerAddress.parse(tls_broker.url)  # the public CAs do not know the site's CA either
    assert _round_trip(system_cas, "tls-test/system", within=3) is None


def test_a_missing_ca_file_is_a_settings_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PUMPWATCH_MQTT__CA_FILE", str(tmp_path / "nowhere.pem"))
    with pytest.raises(ValueError, match="ca_file"):
        Settings()

"""Settings from the environment (prefix PUMPWATCH_, nested with __), validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, FilePath, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class MqttSettings(BaseModel):
    """The broker: none means an in-process broker on `embedded_port`."""

    url: str | None = Field(None, description="mqtt://user:password@host:1883 or mqtts://...")
    ca_file: FilePath | None = Field(None, description="PEM file of the CA that signed the broker's "
                                     "certificate (mqtts://); default: the system's CAs")
    embedded_port: int = Field(1883, ge=0, le=65535)


class InfluxSettings(BaseModel):
    """InfluxDB through its v1 HTTP API (1.x, 2.x v1-compat, 3.x); no URL means the embedded store."""

    url: str | None = Field(None, description="e.g. http://127.0.0.1:8086")
    database: str = "pumpwatch"
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = Field(None, description="InfluxDB 2.x/3.x token (v1 compatibility API)")
    create_database: bool = True
    timeout: float = Field(10.0, gt=0)


class CollectorSettings(BaseModel):
    """Where the collector keeps its state and how much it may hold."""

    state_dir: Path = Path(".state")
    buffer_capacity: int = Field(5_000_000, ge=10_000, description="readings held while the store is down")
    intake_limit: int = Field(200_000, ge=1000)
    catch_up_depth: int = Field(100_000, ge=0, description="readings waiting for a reachable store at "
                                "which MQTT acknowledgements wait until half are written (0: never)")
    batch_size: int = Field(5000, ge=1, le=100_000)
    write_linger: float = Field(0.25, ge=0, le=5, description="seconds the writer waits after a short batch "
                                "so small commits are written together")
    client_id: str = "pumpwatch-collector"
    share_group: str | None = Field(None, description="MQTT shared-subscription group for several collectors")
    shard: int | None = Field(None, ge=0, description="poll only Modbus devices of this shard")


class ApiSettings(BaseModel):
    """The API and web UI: where it listens and where its state lives."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    database_url: str | None = Field(None, description="postgresql://... ; default SQLite in the state dir")
    secure_cookies: bool = Field(False, description="true behind TLS: cookies only over HTTPS")
    attachments_dir: Path | None = Field(None, description="default: <state_dir>/attachments")
    max_upload_mb: int = Field(10, ge=1, le=100)


class NotifySettings(BaseModel):
    """Where the API tells people about serious alarms and late tasks: a chat-group robot or a webhook."""

    webhook_url: SecretStr | None = Field(None, description="WeCom / DingTalk group robot URL, or any "
                                          "HTTPS endpoint taking JSON; unset: no notifications")
    style: Literal["robot", "json"] = Field("robot", description="robot: {msgtype: text} as WeCom and "
                                            "DingTalk robots take it; json: the structured notice")
    min_severity: Literal["critical", "major", "minor", "warning"] = "major"
    queue_limit: int = Field(1000, ge=1, description="notices waiting at most; the oldest is dropped")


class SimulatorSettings(BaseModel):
    """How the simulators run."""

    speed: float = Field(1.0, gt=0, le=10_000)
    seed: int = 1


class Settings(BaseSettings):
    """All of PumpWatch's settings; e.g. PUMPWATCH_MQTT__URL=mqtt://127.0.0.1:1883."""

    model_config = SettingsConfigDict(env_prefix="PUMPWATCH_", env_nested_delimiter="__",
                                      extra="ignore")

    site: Path = Path("examples/site.yaml")
    mqtt: MqttSettings = MqttSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    influx: InfluxSettings = InfluxSettings()
    collector: CollectorSettings = CollectorSettings()
    notify: NotifySettings = NotifySettings()
    api: ApiSettings = ApiSettings()
    environment: Literal["development", "production"] = Field(
        "development", description="production: refuse to start with demo logins or insecure settings")
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="json: one object per line")

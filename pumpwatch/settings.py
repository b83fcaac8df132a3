"""Settings from the environment (prefix PUMPWATCH_, nested with __), validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    DirectoryPath,
    Field,
    FilePath,
    ModelWrapValidatorHandler,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails
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
    ca_file: FilePath | None = Field(None, description="PEM file of the CA that signed InfluxDB's "
                                     "certificate (https://); default: the system's CAs")


class CollectorSettings(BaseModel):
    """Where the collector keeps its state and how much it may hold."""

    state_dir: Path = Path(".state")
    buffer_capacity: int = Field(5_000_000, ge=10_000, description="readings held while the store is down")
    intake_limit: int = Field(200_000, ge=1000)
    catch_up_depth: int = Field(100_000, ge=0, description="readings waiting for a reachable store at "
                                "which MQTT acknowledgements wait until half are written (0: never)")
    batch_size: int = Field(5000, ge=1, le=100_000)
    write_linger: float = Field(1.0, ge=0, le=5, description="seconds the writer waits after a short batch "
                                "so small commits are written together (the live board and the alarm "
                                "rules do not wait for the store; the history lags by at most this)")
    client_id: str = "pumpwatch-collector"
    share_group: str | None = Field(None, description="MQTT shared-subscription group for several collectors "
                                    "(the broker spreads the messages over them; each member's rules also "
                                    "see the others' readings, and one member announces each estate's "
                                    "alarms)")
    shard: int | None = Field(None, ge=0, description="poll only Modbus devices of this shard")
    estates: list[str] | None = Field(None, description="the estates this collector serves (their Modbus "
                                      "devices, topic maps, edges and rules); default all of the deployment. "
                                      "JSON list or comma-separated ids")
    reload_interval: float = Field(5.0, ge=0, le=3600, description="seconds between two looks at the "
                                   "deployment's files for changes (0: only on SIGHUP)")

    @field_validator("estates", mode="before")
    @classmethod
    def _comma_separated(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip().startswith("["):
            return [part.strip() for part in v.split(",") if part.strip()]
        return v
    retry_cap: float = Field(30.0, ge=0.5, le=3600, description="longest pause, seconds, between two "
                             "writes to a series store that is away (the pause doubles up to it)")
    probe_interval: float = Field(1.0, gt=0, le=60, description="while the series store is away, how "
                                  "often to look whether it is back (a cheap check, not a write)")


class ApiSettings(BaseModel):
    """The API and web UI: where it listens and where its state lives."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    database_url: str | None = Field(None, description="postgresql://... ; default SQLite in the state dir")
    secure_cookies: bool = Field(False, description="true behind TLS: cookies only over HTTPS")
    attachments_dir: Path | None = Field(None, description="default: <state_dir>/attachments")
    max_upload_mb: int = Field(10, ge=1, le=100)
    trusted_proxies: list[str] = Field(
        default_factory=list, description="addresses of reverse proxies whose X-Forwarded-For is believed; "
        "default none: the peer's address is the client's")
    tls_cert: FilePath | None = Field(None, description="PEM certificate (chain) for HTTPS served by the "
                                      "API itself; default: plain HTTP (TLS in front of it)")
    tls_key: FilePath | None = Field(None, description="PEM private key of tls_cert")

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        return self


SeverityName = Literal["critical", "major", "minor", "warning"]
_SECRET_FIELDS = {"url", "webhook_url", "password"}


class _ChannelSettings(BaseModel):
    """What every notification channel has: a name (the counter's `channel` label) and a threshold."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                             description="label of this channel in the metrics; default: its type, "
                             "numbered from the second channel of a type on (robot, robot-2, ...)")
    min_severity: SeverityName | None = Field(None, description="alarms told from this severity up; "
                                              "default: notify.min_severity")


def _http_url(url: SecretStr) -> SecretStr:
    if not url.get_secret_value().startswith(("https://", "http://")):
        raise ValueError("must be an http:// or https:// URL")
    return url


class RobotChannelSettings(_ChannelSettings):
    """A WeCom / DingTalk group robot: `{"msgtype": "text", ...}`; HTTP 200 with errcode != 0 is a refusal."""

    type: Literal["robot"] = "robot"
    url: SecretStr = Field(description="the robot's webhook URL (it carries the robot's key)")

    _check_url = field_validator("url")(_http_url)


class JsonWebhookSettings(_ChannelSettings):
    """Any HTTP endpoint taking the structured notice as JSON; any 2xx answer accepts it."""

    type: Literal["json"] = "json"
    url: SecretStr = Field(description="the endpoint's URL (may carry a key)")

    _check_url = field_validator("url")(_http_url)


class EmailChannelSettings(_ChannelSettings):
    """A mail server taking the notices for a list of recipients (SMTP, STARTTLS or implicit TLS)."""

    type: Literal["email"] = "email"
    host: str = Field(min_length=1)
    port: int | None = Field(None, ge=1, le=65535, description="default: 465 with tls, 587 with "
                             "starttls, else 25")
    starttls: bool = Field(False, description="upgrade the connection with STARTTLS before sending")
    tls: bool = Field(False, description="implicit TLS from the first byte (SMTPS, usually port 465)")
    ca_file: FilePath | None = Field(None, description="PEM file of the CA that signed the server's "
                                     "certificate; default: the system's CAs")
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="From: address")
    recipients: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    timeout: float = Field(30.0, gt=0, description="seconds the server may take to answer, each step")

    @model_validator(mode="after")
    def _consistent(self) -> EmailChannelSettings:
        if self.starttls and self.tls:
            raise ValueError("starttls and tls exclude each other: choose one")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: give both or neither")
        return self

    @property
    def server_port(self) -> int:
        """The port to connect to."""
        if self.port is not None:
            return self.port
        return 465 if self.tls else 587 if self.starttls else 25


AnyChannelSettings = RobotChannelSettings | JsonWebhookSettings | EmailChannelSettings
ChannelSettings = Annotated[AnyChannelSettings, Field(discriminator="type")]


class NotifySettings(BaseModel):
    """Where the API tells people about serious alarms and late tasks: robots, webhooks, mail.

    `channels` is a list (from the environment as JSON); `webhook_url` + `style` is the shorthand of one
    robot or JSON-webhook channel, told before the listed ones.
    """

    channels: list[ChannelSettings] = Field(default_factory=list, description="robots, webhooks, mail "
                                            'servers, e.g. [{"type": "robot", "url": "https://..."}]')
    webhook_url: SecretStr | None = Field(None, description="shorthand for one channel: WeCom / DingTalk "
                                          "group robot URL, or any HTTPS endpoint taking JSON")
    style: Literal["robot", "json"] = Field("robot", description="of webhook_url: robot: {msgtype: text} as "
                                            "WeCom and DingTalk robots take it; json: the structured notice")
    min_severity: SeverityName = Field("major", description="alarms told from this severity up "
                                       "(a channel's own min_severity overrides it)")
    queue_limit: int = Field(1000, ge=1, description="notices waiting at most, per channel; the oldest "
                             "is dropped")

    @model_validator(mode="wrap")
    @classmethod
    def _hide_secrets_in_errors(cls, data: Any, handler: ModelWrapValidatorHandler[NotifySettings]
                                ) -> NotifySettings:
        """Validation errors name the field and the problem but never echo a URL, a password or a channel."""
        try:
            return handler(data)
        except ValidationError as err:
            details: list[InitErrorDetails] = []
            for error in err.errors():
                hide = isinstance(error["input"], dict | list) or bool(
                    _SECRET_FIELDS.intersection(str(part) for part in error["loc"]))
                detail = InitErrorDetails(type=error["type"], loc=error["loc"],
                                          input="(hidden)" if hide else error["input"])
                if "ctx" in error:
                    detail["ctx"] = error["ctx"]
                details.append(detail)
            raise ValidationError.from_exception_data(err.title, details) from None

    @model_validator(mode="after")
    def _names_unique(self) -> NotifySettings:
        names = [str(channel.name) for channel in self.configured_channels()]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"two notification channels are named {', '.join(map(repr, twice))}: "
                             "give each its own `name`")
        return self

    def configured_channels(self) -> list[AnyChannelSettings]:
        """The channels in use, each with its name: the `webhook_url` shorthand first, then `channels`."""
        listed: list[AnyChannelSettings] = []
        if self.webhook_url is not None:
            listed.append(RobotChannelSettings(url=self.webhook_url) if self.style == "robot"
                          else JsonWebhookSettings(url=self.webhook_url))
        listed.extend(self.channels)
        seen: dict[str, int] = {}
        named: list[AnyChannelSettings] = []
        for channel in listed:
            seen[channel.type] = seen.get(channel.type, 0) + 1
            if channel.name is None:
                number = seen[channel.type]
                channel = channel.model_copy(
                    update={"name": channel.type if number == 1 else f"{channel.type}-{number}"})
            named.append(channel)
        return named


class EdgeSettings(BaseModel):
    """`pumpwatch edge`: which edge of the site this box is, and its uplink to the centre's broker.

    The uplink is apart from `mqtt` (the room's own broker for wireless sensors, if any): readings
    leave the durable buffer in batches published there at QoS 1 and are removed on the broker's PUBACK.
    """

    id: str | None = Field(None, description="this box's id in the site file's `edges:`")
    uplink_url: SecretStr | None = Field(None, description="the centre's broker with this edge's own "
                                         "login: mqtts://user:password@centre.example.com:8883")
    uplink_ca_file: FilePath | None = Field(None, description="PEM file of the CA that signed the centre "
                                            "broker's certificate; default: the system's CAs")
    keepalive: int = Field(30, ge=5, le=600, description="seconds; a dead link is noticed after 1.5 times it")
    ack_timeout: float = Field(30.0, gt=0, le=600, description="seconds to wait for a batch's PUBACK before "
                               "the link counts as down (the batch is sent again, with the same number)")
    linger: float = Field(1.0, ge=0, le=30, description="seconds the uplink waits after a short batch so "
                          "readings travel in fuller, better compressed batches")
    when_full: Literal["drop_oldest", "refuse_newest"] = Field(
        "drop_oldest", description="when the buffer holds collector.buffer_capacity readings: drop the "
        "oldest to take the newest (counted), or refuse the newest (counted)")
    clock_interval: float = Field(60.0, ge=1, le=3600, description="seconds between two clock "
                                  "measurements against the centre")
    compression: int = Field(6, ge=0, le=9, description="zlib level of the batches (0: none)")

    @property
    def uplink(self) -> str | None:
        """The uplink URL as text (it holds the edge's password)."""
        return self.uplink_url.get_secret_value() if self.uplink_url is not None else None


class SigningSettings(BaseModel):
    """Signatures on alarm events, live readings and edge batches between processes (HMAC-SHA256).

    A process that publishes them signs with its own key (`key_id`, `key_file`); a process that takes
    them verifies with the keys in `trusted_dir`, one file `<key id>.key` per sender. An edge's key id
    is its edge id. Without keys nothing is signed or checked (development).
    """

    key_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                               description="this process's key id, e.g. collector-a (an edge: its edge id)")
    key_file: FilePath | None = Field(None, description="file holding this process's key, at least 32 "
                                      "characters (`openssl rand -hex 32`)")
    trusted_dir: DirectoryPath | None = Field(None, description="the keys this process accepts: one file "
                                              "<key id>.key per collector, scheduler or edge")
    max_age: float = Field(86400.0, gt=0, description="seconds an alarm event may take from its sender to "
                           "a receiver (queued at the broker meanwhile) before it counts as replayed")
    live_max_age: float = Field(120.0, gt=0, description="the same for live readings, which the broker "
                                "never queues (clock differences between hosts count too)")


class MetricsSettings(BaseModel):
    """The small HTTP server of `pumpwatch collect` and `pumpwatch edge` alone: /metrics and /healthz.

    Roles with the API (`serve`, `up`, `demo`) serve /metrics on the API's port instead.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9108, ge=0, le=65535, description="0: any free port (printed at start)")


class SimulatorSettings(BaseModel):
    """How the simulators run."""

    speed: float = Field(1.0, gt=0, le=10_000)
    seed: int = 1


class Settings(BaseSettings):
    """All of PumpWatch's settings; e.g. PUMPWATCH_MQTT__URL=mqtt://127.0.0.1:1883."""

    model_config = SettingsConfigDict(env_prefix="PUMPWATCH_", env_nested_delimiter="__",
                                      extra="ignore")

    site: Path = Field(Path("examples/site.yaml"), description="the deployment: a site file (one estate), a "
                       "folder of site files, or a deployment file (kind: deployment)")
    adopt_estate: str | None = Field(None, description="the estate given to maintenance records from before "
                                     "estates (no estate yet) when the deployment has several; with one "
                                     "estate they are given that one")
    mqtt: MqttSettings = MqttSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    influx: InfluxSettings = InfluxSettings()
    collector: CollectorSettings = CollectorSettings()
    notify: NotifySettings = NotifySettings()
    api: ApiSettings = ApiSettings()
    edge: EdgeSettings = EdgeSettings()
    metrics: MetricsSettings = MetricsSettings()
    signing: SigningSettings = SigningSettings()
    environment: Literal["development", "production"] = Field(
        "development", description="production: refuse to start with demo logins or insecure settings")
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="json: one object per line")

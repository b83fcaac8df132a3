"""Settings from the environment (prefix PUMPWATCH_, nested with __), validated at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MqttSettings(BaseModel):
    """The broker: none means an in-process broker on `embedded_port`."""

    url: str | None = Field(None, description="mqtt://user:password@host:1883 or mqtts://...")
    embedded_port: int = Field(1883, ge=0, le=65535)


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
    log_level: str = "INFO"

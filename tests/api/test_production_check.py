"""The production check names demo passwords and insecure settings, and passes a fit configuration."""

from __future__ import annotations

from pathlib import Path

from api.production import production_problems
from maintenance.accounts import demo_password
from maintenance.auth import AuthService
from pumpwatch.settings import ApiSettings, InfluxSettings, MqttSettings, Settings, SigningSettings


def fit_settings(keys: Path) -> Settings:
    (keys / "collector-a.key").write_text("k" * 64)  # a collector whose alarm events the API believes
    return Settings(mqtt=MqttSettings(url="mqtts://collector:s3cret@broker:8883"),
                    influx=InfluxSettings(url="https://influx:8086", token="t0ken"),
                    api=ApiSettings(database_url="postgresql://pumpwatch:pw@db/pumpwatch",
                                    secure_cookies=True),
                    signing=SigningSettings(trusted_dir=keys))


def test_a_demo_login_with_its_published_password_is_refused(auth: AuthService, tmp_path: Path) -> None:
    auth.create_user("admin", demo_password("admin"), ["admin"])
    assert production_problems(fit_settings(tmp_path), auth) == [
        "user 'admin' still has its published demo password"]


def test_a_fit_configuration_passes(auth: AuthService, tmp_path: Path) -> None:
    auth.create_user("admin", "a long and private passphrase", ["admin"])
    assert production_problems(fit_settings(tmp_path), auth) == []

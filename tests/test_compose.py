"""docker-compose.yml checked against the code, since Docker cannot run here.

Every setting it sets is a real `Settings` field and the values validate; every command parses with the
`pumpwatch` CLI; the site file loads and its PLCs are served by the simulator service; the topology
(two collectors, two API replicas, one scheduler) and the health checks hold together.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from api.production import production_problems
from api.routes.health import router as health_router
from collector.service import CollectorService
from maintenance.auth import AuthService
from maintenance.db import make_engine, session_factory, upgrade
from pumpwatch.cli import _parser
from pumpwatch.clock import SystemClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.settings import Settings
from pumpwatch.sitefile import load_site

ROOT = Path(__file__).resolve().parents[1]
INFRASTRUCTURE = ("mosquitto", "influxdb", "postgres")
# What the infrastructure images ship that their health checks may call.
IMAGE_BINARIES = {"eclipse-mosquitto": {"mosquitto_sub", "mosquitto_pub"}, "influxdb": {"curl", "influx"},
                  "postgres": {"pg_isready", "psql"}}
_VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


def _interpolate(value: Any) -> Any:
    """Compose's `${NAME...}` as a sample secret, `$$` as `$`."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: f"{m.group(1).lower()}-secret", value).replace("$$", "$")
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    return value


COMPOSE: dict[str, Any] = _interpolate(
    yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8")))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def _dockerfile(instruction: str) -> str:
    found = re.findall(rf"^{instruction}\s+(.+)$", DOCKERFILE, re.MULTILINE)
    assert len(found) == 1, f"one {instruction} in the Dockerfile"
    return str(found[0]).strip()


IMAGE_ENV = dict(item.split("=", 1) for item in shlex.split(_dockerfile("ENV")))
WORKDIR = Path(_dockerfile("WORKDIR"))
PUMPWATCH = {name: s for name, s in SERVICES.items() if "build" in s}  # the roles, all one image


def _env(service: str) -> dict[str, str]:
    """What a role's process sees: the image's ENV, then the service's environment."""
    return {**IMAGE_ENV, **{k: str(v) for k, v in SERVICES[service].get("environment", {}).items()}}


def _role(service: str) -> str:
    return str(PUMPWATCH[service]["command"][0])


def _by_role(role: str) -> list[str]:
    return [name for name in PUMPWATCH if _role(name) == role]


def _settings(service: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the role's process would build from its environment."""
    for key in list(os.environ):
        if key.startswith("PUMPWATCH_"):
            monkeypatch.delenv(key)
    for key, value in _env(service).items():
        monkeypatch.setenv(key, value)
    return Settings()


def _in_repo(path: str) -> Path:
    """A path inside the image, as the file the Dockerfile copied there from the repository."""
    inside = Path(path)
    assert inside.is_relative_to(WORKDIR), f"{path} is not under the image's WORKDIR {WORKDIR}"
    relative = inside.relative_to(WORKDIR)
    assert re.search(rf"^COPY\s+{relative.parts[0]}\s", DOCKERFILE, re.MULTILINE), f"the image has no {path}"
    return ROOT / relative


def test_the_image_runs_the_pumpwatch_command() -> None:
    assert _dockerfile("ENTRYPOINT") == '["pumpwatch"]'
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'pumpwatch = "pumpwatch.cli:main"' in pyproject
    assert _dockerfile("FROM").startswith("python:")  # the health checks run `python`


@pytest.mark.parametrize("service", sorted(PUMPWATCH))
def test_every_variable_is_a_setting_and_validates(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in _env(service):
        assert key.startswith("PUMPWATCH_"), f"{service}: {key} is not a PumpWatch setting"
        model: type[BaseModel] = Settings
        parts = key.removeprefix("PUMPWATCH_").lower().split("__")
        for depth, part in enumerate(parts):
            assert part in model.model_fields, f"{service}: {key}: no field {part!r} in {model.__name__}"
            annotation = model.model_fields[part].annotation
            if depth < len(parts) - 1:
                assert isinstance(annotation, type), key
                assert issubclass(annotation, BaseModel), key
                model = annotation
    _settings(service, monkeypatch)  # the values validate


@pytest.mark.parametrize("service", sorted(PUMPWATCH))
def test_every_command_parses(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    parser = _parser(_settings(service, monkeypatch))
    try:
        args = parser.parse_args(PUMPWATCH[service]["command"])
    except SystemExit as err:
        pytest.fail(f"{service}: `pumpwatch {shlex.join(PUMPWATCH[service]['command'])}` fails ({err})")
    assert args.command in ("simulate", "collect", "serve", "schedule")


def test_the_topology() -> None:
    assert set(INFRASTRUCTURE) <= set(SERVICES)
    assert len(_by_role("simulate")) == 1
    collectors = _by_role("collect")
    assert len(collectors) == 2
    envs = [_env(name) for name in collectors]
    groups = {env.get("PUMPWATCH_COLLECTOR__SHARE_GROUP") for env in envs}
    assert len(groups) == 1, "one shared-subscription group"
    assert None not in groups, "a shared subscription"
    assert len({env.get("PUMPWATCH_COLLECTOR__SHARD") for env in envs}) == 2, "different shards"
    assert len({env.get("PUMPWATCH_COLLECTOR__CLIENT_ID") for env in envs}) == 2, "own MQTT sessions"
    state_dirs = {env["PUMPWATCH_COLLECTOR__STATE_DIR"] for env in envs}
    volumes = [{v.split(":")[0] for v in SERVICES[name]["volumes"] if v.split(":")[1] in state_dirs}
               for name in collectors]
    assert all(len(v) == 1 for v in volumes), "a volume for the durable buffer"
    assert volumes[0] != volumes[1], "own durable buffers"
    (api,) = _by_role("serve")
    assert PUMPWATCH[api]["deploy"]["replicas"] == 2
    (scheduler,) = _by_role("schedule")
    assert PUMPWATCH[scheduler].get("deploy", {}).get("replicas", 1) == 1


def test_the_site_loads_and_the_simulator_serves_its_plcs(monkeypatch: pytest.MonkeyPatch) -> None:
    sites = {_env(name)["PUMPWATCH_SITE"] for name in PUMPWATCH}
    assert len(sites) == 1, "every role reads the same site file"
    site = load_site(_in_repo(sites.pop()))
    simulator = _by_role("simulate")[0]
    assert site.modbus
    for device in site.modbus:
        assert device.host == simulator, f"{device.id}: host {device.host} is not the simulator service"
        assert str(device.port) in str(SERVICES[simulator]["healthcheck"]["test"])
    shards = {device.shard for device in site.modbus}
    collector_shards = {_settings(name, monkeypatch).collector.shard for name in _by_role("collect")}
    assert shards == collector_shards, "every PLC is polled by exactly one collector"


def test_the_compose_site_is_the_example_site_but_for_plc_hosts_and_shards() -> None:
    compose_site = load_site(_in_repo(_env(next(iter(PUMPWATCH)))["PUMPWATCH_SITE"]))
    example = load_site(ROOT / "examples" / "site.yaml")

    def placed_anywhere(site: Any) -> dict[str, Any]:
        data: dict[str, Any] = site.model_dump()
        for device in data["modbus"]:
            device.update(host=None, shard=None)
        return data

    assert placed_anywhere(compose_site) == placed_anywhere(example)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_health_checks_and_dependencies(service: str) -> None:
    spec = SERVICES[service]
    test = spec["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL")
    if service in PUMPWATCH:
        assert test[:2] == ["CMD", "python"]
        if test[2] == "-m":
            assert importlib.util.find_spec(test[3]) is not None, f"{service}: no module {test[3]}"
        else:
            assert test[2] == "-c"
            compile(test[3], f"{service} health check", "exec")
        dependencies = spec["depends_on"]
        assert dependencies, service
        assert set(dependencies) <= set(SERVICES), service
        assert all(d == {"condition": "service_healthy"} for d in dependencies.values()), service
        assert set(INFRASTRUCTURE) & set(dependencies), service
    else:
        image = spec["image"].split(":")[0]
        binary = test[1].split()[0] if test[0] == "CMD-SHELL" else test[1]
        assert binary in IMAGE_BINARIES[image], f"{service}: {binary} is not in the {image} image"


def test_the_api_health_check_asks_healthz_where_the_api_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    (api,) = _by_role("serve")
    settings = _settings(api, monkeypatch)
    probe = SERVICES[api]["healthcheck"]["test"][3]
    assert f"http://localhost:{settings.api.port}/healthz" in probe
    assert "/healthz" in {getattr(route, "path", None) for route in health_router.routes}
    assert settings.api.host == "0.0.0.0"
    assert any(str(p).endswith(f":{settings.api.port}") for p in SERVICES[api]["ports"])


def test_the_collector_health_check_looks_for_the_buffer_the_collector_creates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _by_role("collect"):
        settings = _settings(name, monkeypatch)
        state_dir = settings.collector.state_dir
        probe = SERVICES[name]["healthcheck"]["test"][3]
        (looked_for,) = re.findall(r"Path\('([^']+)'\)", probe)
        assert Path(looked_for).parent == state_dir
        settings.collector.state_dir = tmp_path / name  # the same service, started here
        settings.influx.url = None
        site = load_site(ROOT / "examples" / "site.yaml")
        CollectorService(site, settings, SystemClock(), None).parts.buffer.close()
        assert (tmp_path / name / Path(looked_for).name).exists()


def test_the_roles_pass_the_production_start_and_match_the_servers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'users.db'}")
    upgrade(engine)
    auth = AuthService(session_factory(engine), SystemClock())
    influx, postgres, mosquitto = SERVICES["influxdb"], SERVICES["postgres"], SERVICES["mosquitto"]
    for name in PUMPWATCH:
        settings = _settings(name, monkeypatch)
        if settings.environment == "production":
            assert production_problems(settings, auth) == [], name
        assert settings.mqtt.url is not None
        broker = BrokerAddress.parse(settings.mqtt.url)
        assert (broker.host, broker.port) == ("mosquitto", 1883)
        assert f"mosquitto_passwd -b -c /mosquitto/config/passwd {broker.username} " in mosquitto["command"]
        assert settings.influx.url == "http://influxdb:8086"
        assert settings.influx.database == influx["environment"]["INFLUXDB_DB"]
        assert settings.influx.username == influx["environment"]["INFLUXDB_USER"]
        # Only an InfluxDB admin may CREATE DATABASE; the image creates it for the pumpwatch user.
        if settings.influx.username != influx["environment"]["INFLUXDB_ADMIN_USER"]:
            assert not settings.influx.create_database, name
        assert settings.api.database_url is not None
        user_host_db = re.fullmatch(r"postgresql://(\w+):[^@]+@(\w+)/(\w+)", settings.api.database_url)
        assert user_host_db is not None
        assert user_host_db.groups() == (postgres["environment"]["POSTGRES_USER"], "postgres",
                                         postgres["environment"]["POSTGRES_DB"])
    engine.dispose()


# --- the edge box (examples/edge-compose.yml) ------------------------------------------------------

EDGE_COMPOSE: dict[str, Any] = _interpolate(
    yaml.safe_load((ROOT / "examples" / "edge-compose.yml").read_text(encoding="utf-8")))
EDGE_SERVICES: dict[str, dict[str, Any]] = EDGE_COMPOSE["services"]


def _edge_settings_of(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], Settings]:
    """The edge's settings from its environment; the CA secret (mounted by compose) is a file of ours."""
    env = {**IMAGE_ENV, **{k: str(v) for k, v in EDGE_SERVICES["edge"]["environment"].items()}}
    secret = EDGE_SERVICES["edge"]["secrets"][0]
    assert env["PUMPWATCH_EDGE__UPLINK_CA_FILE"] == f"/run/secrets/{secret}"
    stand_in = Path(tempfile.mkdtemp()) / "centre-ca.pem"
    stand_in.write_text("-----BEGIN CERTIFICATE-----\n")
    env["PUMPWATCH_EDGE__UPLINK_CA_FILE"] = str(stand_in)
    for key in list(os.environ):
        if key.startswith("PUMPWATCH_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        assert key.startswith("PUMPWATCH_"), key
        model: type[BaseModel] = Settings
        for part in key.removeprefix("PUMPWATCH_").lower().split("__")[:-1]:
            annotation = model.model_fields[part].annotation
            assert isinstance(annotation, type), key
            assert issubclass(annotation, BaseModel), key
            model = annotation
        assert key.removeprefix("PUMPWATCH_").lower().split("__")[-1] in model.model_fields, key
        monkeypatch.setenv(key, value)
    return env, Settings()


def test_the_edge_box_runs_pumpwatch_edge_on_a_site_that_has_this_edge(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pumpwatch.cli import _edge_settings

    env, settings = _edge_settings_of(monkeypatch)
    edge = EDGE_SERVICES["edge"]
    assert edge["build"] == ".."
    assert edge["image"] == "pumpwatch:latest"
    args = _parser(settings).parse_args(edge["command"])
    assert args.command == "edge"
    site = load_site(_in_repo(env["PUMPWATCH_SITE"]))
    secret = EDGE_SERVICES["edge"]["secrets"][0]
    assert settings.edge.uplink_ca_file is not None
    assert Path(EDGE_COMPOSE["secrets"][secret]["file"]).name == "centre-ca.pem"
    assert _edge_settings(args, settings, site) is None  # production: mqtts with the edge's own login
    assert settings.edge.id in {e.id for e in site.edges}
    uplink = BrokerAddress.parse(settings.edge.uplink or "")
    assert uplink.tls
    assert uplink.username
    assert uplink.password
    assert settings.edge.when_full in ("drop_oldest", "refuse_newest")


def test_the_edge_reads_the_room_broker_and_keeps_its_buffer_on_a_volume(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _env, settings = _edge_settings_of(monkeypatch)
    assert settings.mqtt.url is not None
    room = BrokerAddress.parse(settings.mqtt.url)
    assert room.host in EDGE_SERVICES
    assert EDGE_SERVICES[room.host]["image"].startswith("eclipse-mosquitto")
    assert f"listener {room.port}" in EDGE_COMPOSE["configs"]["mosquitto"]["content"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in EDGE_SERVICES["edge"]["volumes"]}
    assert str(settings.collector.state_dir) in mounts
    assert mounts[str(settings.collector.state_dir)] in EDGE_COMPOSE["volumes"]


@pytest.mark.parametrize("service", sorted(EDGE_SERVICES))
def test_the_edge_box_health_checks(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = EDGE_SERVICES[service]
    test = spec["healthcheck"]["test"]
    if service == "edge":
        _env, settings = _edge_settings_of(monkeypatch)
        assert test[:3] == ["CMD", "python", "-c"]
        compile(test[3], "edge health check", "exec")
        assert f"http://localhost:{settings.metrics.port}/healthz" in test[3]
        assert settings.metrics.enabled
        assert settings.metrics.host == "0.0.0.0"
        assert spec["depends_on"] == {"mosquitto": {"condition": "service_healthy"}}
    else:
        image = spec["image"].split(":")[0]
        binary = test[1].split()[0] if test[0] == "CMD-SHELL" else test[1]
        assert binary in IMAGE_BINARIES[image]

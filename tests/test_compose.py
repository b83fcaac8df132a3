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

from api.production import demo_login_problems
from api.routes.health import router as health_router
from collector.service import CollectorService
from maintenance.auth import AuthService
from maintenance.db import make_engine, session_factory, upgrade
from pumpwatch.cli import _parser, main
from pumpwatch.clock import SystemClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.production import role_problems
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


def _mounted(spec: dict[str, Any], secrets: dict[str, Any]) -> dict[str, str]:
    """Where a service's secrets appear in its container: path -> the secret's file in the repository."""
    mounts: dict[str, str] = {}
    for entry in spec.get("secrets", []):
        source, target = (entry, None) if isinstance(entry, str) else (entry["source"], entry.get("target"))
        path = target if target and target.startswith("/") else f"/run/secrets/{target or source}"
        mounts[path] = secrets[source]["file"]
    return mounts


def _stand_ins(env: dict[str, str], mounts: dict[str, str]) -> dict[str, str]:
    """The environment with each mounted secret (or directory of them) as a file made here.

    Keys (`*.key` files of the repository's ./secrets/) get a usable key, certificates a PEM stub;
    a setting naming a directory gets the directory of the secrets mounted under it.
    """
    root = Path(tempfile.mkdtemp())
    for inside, outside in mounts.items():
        made = root / inside.lstrip("/")
        made.parent.mkdir(parents=True, exist_ok=True)
        made.write_text("k" * 64 if outside.endswith(".key") else "-----BEGIN CERTIFICATE-----\n")
    replaced = dict(env)
    for key, value in env.items():
        if value.startswith("/run/"):
            assert value in mounts or any(m.startswith(value + "/") for m in mounts), \
                f"{key}: {value} is no secret mounted into the service"
            replaced[key] = str(root / value.lstrip("/"))
    return replaced


def _settings(service: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the role's process would build from its environment (secrets made here)."""
    for key in list(os.environ):
        if key.startswith("PUMPWATCH_"):
            monkeypatch.delenv(key)
    env = _stand_ins(_env(service), _mounted(SERVICES[service], COMPOSE["secrets"]))
    for key, value in env.items():
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
    assert f"https://localhost:{settings.api.port}/healthz" in probe
    assert settings.api.tls_cert is not None
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


def _username_and_password_variable(url: str) -> tuple[str, str]:
    """The login of a broker URL in the file as written: (username, the .env variable of its password)."""
    found = re.fullmatch(r"mqtts://([\w-]+):\$\{(\w+):\?[^}]*\}@mosquitto:8883", url)
    assert found is not None, url
    return found.group(1), found.group(2)


RAW: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_the_roles_pass_the_production_start_and_match_the_servers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'users.db'}")
    upgrade(engine)
    auth = AuthService(session_factory(engine), SystemClock())
    influx, postgres, mosquitto = SERVICES["influxdb"], SERVICES["postgres"], SERVICES["mosquitto"]
    for name in PUMPWATCH:
        settings = _settings(name, monkeypatch)
        site = load_site(_in_repo(_env(name)["PUMPWATCH_SITE"]))
        if settings.environment == "production":
            assert role_problems(settings, _role(name), site) == [], name
            assert demo_login_problems(auth) == []
        assert settings.mqtt.url is not None
        broker = BrokerAddress.parse(settings.mqtt.url)
        assert (broker.host, broker.port, broker.tls) == ("mosquitto", 8883, True)
        assert "listener 8883" in COMPOSE["configs"]["mosquitto"]["content"]
        username, variable = _username_and_password_variable(
            RAW["services"][name]["environment"]["PUMPWATCH_MQTT__URL"])
        assert username == broker.username
        # The broker's password file gets this login with the password the process logs in with.
        assert (f"mosquitto_passwd -b {'-c ' if username == 'collector-a' else ''}/mosquitto/config/passwd "
                f'{username} \\"${variable}\\"') in mosquitto["command"]
        assert variable in mosquitto["environment"]
        assert settings.influx.url == "https://influxdb:8086"
        assert influx["environment"]["INFLUXDB_HTTP_HTTPS_ENABLED"] == "true"
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


def _generated_acl(content: str, tmp_path: Path) -> str:
    """What the command named in the ACL's first line writes (run in the repository, as a person would)."""
    found = re.match(r"# Mosquitto acl_file generated by `pumpwatch (broker-acl [^`]+)`", content)
    assert found is not None, "the ACL names the command that generated it"
    argv = shlex.split(found.group(1))
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        assert main([*argv, "--out", str(tmp_path)]) == 0
    finally:
        os.chdir(cwd)
    return (tmp_path / "acl").read_text(encoding="utf-8")


def _identities(acl: str) -> dict[str, str]:
    """identity -> role, from the ACL's comments."""
    roles = re.findall(r"^# (\w+): .*\nuser (\S+)$", acl, re.MULTILINE)
    return {name: role for role, name in roles}


ROLE_IDENTITY = {"collect": "collector", "serve": "api", "schedule": "scheduler", "simulate": "simulator"}


def test_the_broker_acl_is_generated_from_the_site_and_names_every_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    acl = COMPOSE["configs"]["mosquitto-acl"]["content"]
    assert acl == _generated_acl(acl, tmp_path), "run the command of the ACL's first line, paste its output"
    capsys.readouterr()
    assert f"--site {_in_repo(_env('api')['PUMPWATCH_SITE']).relative_to(ROOT)}" in acl.splitlines()[0]
    identities = _identities(acl)
    for name in PUMPWATCH:  # each process logs in as an identity of its own role
        username = BrokerAddress.parse(_settings(name, monkeypatch).mqtt.url or "").username
        assert identities.get(str(username)) == ROLE_IDENTITY[_role(name)], name
    logins = {_username_and_password_variable(RAW["services"][n]["environment"]["PUMPWATCH_MQTT__URL"])[0]
              for n in PUMPWATCH}
    passwords = set(re.findall(r"/mosquitto/config/passwd ([\w-]+) ", SERVICES["mosquitto"]["command"]))
    assert passwords == logins | {"monitor"}, "a password for each process and the health check only"
    assert identities["monitor"] == "monitor"
    assert "-u monitor" in SERVICES["mosquitto"]["healthcheck"]["test"][1]
    config = COMPOSE["configs"]["mosquitto"]["content"]
    assert "allow_anonymous false" in config
    assert "acl_file /mosquitto-acl" in config
    assert {"source": "mosquitto-acl", "target": "/mosquitto-acl"} in SERVICES["mosquitto"]["configs"]


def test_the_api_trusts_the_keys_of_the_processes_that_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    signers = {}
    for name in PUMPWATCH:
        settings = _settings(name, monkeypatch)
        if _role(name) in ("collect", "schedule"):
            assert settings.signing.key_id is not None, name
            assert settings.signing.key_file is not None, name
            signers[settings.signing.key_id] = _env(name)["PUMPWATCH_SIGNING__KEY_FILE"]
    (api,) = _by_role("serve")
    trusted_dir = _env(api)["PUMPWATCH_SIGNING__TRUSTED_DIR"]
    trusted = {Path(path).stem: source for path, source in _mounted(SERVICES[api], COMPOSE["secrets"]).items()
               if path.startswith(trusted_dir + "/")}
    assert set(trusted) == set(signers)
    for kid, inside in signers.items():
        service = next(n for n in PUMPWATCH if _env(n).get("PUMPWATCH_SIGNING__KEY_ID") == kid)
        assert _mounted(SERVICES[service], COMPOSE["secrets"])[inside] == trusted[kid], kid


# --- the edge box (examples/edge-compose.yml) ------------------------------------------------------

EDGE_COMPOSE: dict[str, Any] = _interpolate(
    yaml.safe_load((ROOT / "examples" / "edge-compose.yml").read_text(encoding="utf-8")))
EDGE_SERVICES: dict[str, dict[str, Any]] = EDGE_COMPOSE["services"]


def _edge_settings_of(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], Settings]:
    """The edge's settings from its environment; the secrets (mounted by compose) are files of ours."""
    written = {**IMAGE_ENV, **{k: str(v) for k, v in EDGE_SERVICES["edge"]["environment"].items()}}
    env = _stand_ins(written, _mounted(EDGE_SERVICES["edge"], EDGE_COMPOSE["secrets"]))
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
    assert settings.edge.uplink_ca_file is not None
    assert EDGE_COMPOSE["secrets"]["site-ca"]["file"] == "./secrets/site-ca.pem"
    assert _edge_settings(args, settings, site) is None
    assert role_problems(settings, "edge", site) == []  # mqtts with its own logins, its own key
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


def test_the_room_broker_acl_is_generated_for_this_edge(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    acl = EDGE_COMPOSE["configs"]["mosquitto-acl"]["content"]
    assert acl == _generated_acl(acl, tmp_path), "run the command of the ACL's first line, paste its output"
    capsys.readouterr()
    _env, settings = _edge_settings_of(monkeypatch)
    assert f"--edge {settings.edge.id}" in acl.splitlines()[0]
    identities = _identities(acl)
    room = BrokerAddress.parse(settings.mqtt.url or "")
    assert identities[str(room.username)] == "edge"
    room_broker = EDGE_SERVICES["mosquitto"]
    passwords = set(re.findall(r"/mosquitto/config/passwd ([\w-]+) ", room_broker["command"]))
    assert passwords == set(identities), "every identity of the room broker has its password from .env"
    assert "-u monitor" in room_broker["healthcheck"]["test"][1]
    assert "allow_anonymous false" in EDGE_COMPOSE["configs"]["mosquitto"]["content"]


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

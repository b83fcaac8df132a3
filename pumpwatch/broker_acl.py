"""The broker's identities and their topic rules, from the site files of every estate: `pumpwatch broker-acl`.

The topics of alarm events and live readings carry the estate (`pumpwatch/alarms/<estate>/<room>/...`,
`pumpwatch/live/<estate>/<room>`), so a rule names exactly one estate's room; device topics are the
site files' own, and no two estates claim one (`pumpwatch.portfolio.conflicts`).

Each process and each publisher of readings logs in with its own identity, and may publish and read
only its own topics:

- a topic map's devices (`mqtt[].username`): publish the topics of the sensors that map feeds;
- a collector (`--collector`, one per process): reads the topic maps and the edges' batches, alarm
  events and clock requests; publishes alarm events and live readings of the site's rooms and the
  edges' clock replies; reads the live readings and alarm events and keeps its presence in a
  shared-subscription group (`collector.group`);
- an API replica (`--api`): reads alarm events and live readings, publishes nothing;
- the scheduler (`--scheduler`): publishes the `rotation_failed` alarm of each duty group;
- the simulator (`--simulator`): publishes every device topic (it stands in for the devices) and
  reads and writes its control topic;
- an edge (`edges[].username`): publishes its own batches, alarm events and clock requests, reads its
  own clock replies;
- a monitor (`--monitor`): reads `$SYS/broker/uptime` (a health check).

A device identity per topic map, not per device: a map is what one gateway or one kind of device
publishes (a Zigbee2MQTT coordinator speaks for all its paired sensors with one login, as it must;
a fleet of Tasmota sockets shares one), which is what a property company's technicians can keep
passwords for. The identity may publish only the topics of the sensors that map feeds (worked out
as the simulator does, `pumpwatch.wireless`), so a stolen gateway password can fake that gateway's
own sensors and nothing else: no alarm events, no other map's sensors. Maps that share a
`username` share one identity; a site that wants one login per device writes one map per device.

Why a Mosquitto `acl_file` (with `password_file`) rather than the dynamic-security plugin: the file is
text generated from the site file, reviewable and diffable beside it, and the broker reads it as it
is; dynamic security keeps its state in a JSON file that the broker itself rewrites at run time
(`mosquitto_ctrl`), so a generated file and the broker's copy would drift apart. Passwords are never
invented here: the command reads them from a file (`name:password` lines) and writes Mosquitto's
PBKDF2-SHA512 hashes, or prints the `mosquitto_passwd` commands to run.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pumpwatch.edge_wire import alarm_topic as edge_alarm_topic
from pumpwatch.edge_wire import batch_topic, time_reply_topic, time_topic
from pumpwatch.site import MqttMapping, Site
from pumpwatch.wire import ALARM_TOPIC, GROUP_TOPIC, SIM_CONTROL_TOPIC, live_topic, room_alarm_topics
from pumpwatch.wireless import plan_devices

ROTATION_ALARM = "rotation_failed"  # the only alarm the scheduler raises (inspection/rotation.py)
HEALTH_TOPIC = "$SYS/broker/uptime"
PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes for its $7$ (PBKDF2-SHA512) hashes


class AclError(ValueError):
    """Identities that cannot be told apart, or passwords that do not fit; the message says which."""


@dataclass(frozen=True)
class Rule:
    """One line of the ACL: `topic read|write|readwrite <topic>`."""

    access: str
    topic: str


@dataclass
class Identity:
    """A broker login: its name, its role, what it is for, and its topic rules."""

    name: str
    role: str
    purpose: str
    rules: list[Rule] = field(default_factory=list)

    def allow(self, access: str, topics: Iterable[str]) -> None:
        """Add rules, each once, in order."""
        for topic in topics:
            rule = Rule(access, topic)
            if rule not in self.rules:
                self.rules.append(rule)

    def may(self, access: str, topic: str) -> bool:
        """Whether a rule lets this identity `read` or `write` the concrete `topic`."""
        return any(access in rule.access and topic_matches(rule.topic, topic) for rule in self.rules)


@dataclass(frozen=True)
class Roles:
    """The names of the processes' identities (one per process: revoking one leaves the others)."""

    collectors: tuple[str, ...] = ("pumpwatch-collector",)
    apis: tuple[str, ...] = ("pumpwatch-api",)
    schedulers: tuple[str, ...] = ("pumpwatch-scheduler",)
    simulator: str | None = None
    monitor: str | None = None


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic-filter matching (`+` one level, `#` the rest)."""
    wanted, got = pattern.split("/"), topic.split("/")
    for i, level in enumerate(wanted):
        if level == "#":
            return True
        if i >= len(got) or (level != "+" and level != got[i]):
            return False
    return len(wanted) == len(got)


def default_username(site: Site, mapping: MqttMapping) -> str:
    """A topic map's login when the site names none: `<site id>-<the topic's fixed levels>`."""
    levels = [level for level in mapping.topic.split("/") if level not in ("+", "#") and "{" not in level]
    slug = re.sub(r"[^a-z0-9]+", "-", "-".join(levels).lower()).strip("-") or "devices"
    return f"{site.site.id}-{slug}"


def device_topics(site: Site, rooms: Iterable[str] | None = None) -> dict[int, list[str]]:
    """Per topic map (its index in `site.mqtt`): the topics its devices publish, for these rooms.

    A map with an anonymous wildcard (`+`, `#`) cannot be narrowed to topics: its filter is given.
    """
    wanted = None if rooms is None else set(rooms)
    room_of = {sensor.id: room.id for room, _eq, sensor in site.iter_sensors()}
    topics: dict[int, list[str]] = {i: [] for i in range(len(site.mqtt))}
    for device in plan_devices(site):
        index = next(i for i, m in enumerate(site.mqtt) if m is device.mapping)
        if wanted is None or any(room_of.get(sensor.id) in wanted for _v, sensor in device.values):
            topics[index].append(device.topic)
    for i, mapping in enumerate(site.mqtt):
        if any(level in ("+", "#") for level in mapping.topic.split("/")):
            topics[i].append(mapping.subscription)
    return topics


def centre_identities(sites: Sequence[Site], roles: Roles) -> list[Identity]:
    """The identities of the centre's broker (the one collectors, APIs and edges share)."""
    ids = _Identities()
    estates = [site.site.id for site in sites]
    twice = sorted({estate for estate in estates if estates.count(estate) > 1})
    if twice:
        raise AclError(f"estate {twice[0]!r} is given twice: give each estate's site file once")
    rooms = [(site.site.id, room.id) for site in sites for room in site.rooms]
    subscriptions = sorted({m.subscription for site in sites for m in site.mqtt})
    has_edges = any(site.edges for site in sites)
    for site in sites:
        _devices(ids, site, None)
    for name in roles.collectors:
        collector = ids.add(name, "collector", "readings in; alarm events and live readings out")
        collector.allow("read", subscriptions)
        # Read as well: a shared-subscription group's members take each other's live readings and alarm
        # events, and keep their presence (`collector.group`).
        collector.allow("readwrite", [room_alarm_topics(estate, room) for estate, room in rooms])
        collector.allow("readwrite", [live_topic(estate, room) for estate, room in rooms])
        collector.allow("readwrite", [f"{GROUP_TOPIC}/#"])
        if has_edges:
            collector.allow("read", [batch_topic("+"), edge_alarm_topic("+"), time_topic("+")])
            collector.allow("write", [time_reply_topic("+")])
    for name in roles.apis:
        api = ids.add(name, "api", "takes alarm events and live readings, publishes nothing")
        api.allow("read", [room_alarm_topics(estate, room) for estate, room in rooms])
        api.allow("read", [live_topic(estate, room) for estate, room in rooms])
    for name in roles.schedulers:
        scheduler = ids.add(name, "scheduler", "the alarm of a failed duty rotation")
        scheduler.allow("write", [f"{ALARM_TOPIC}/{site.site.id}/{room.id}/{group.id}/{ROTATION_ALARM}"
                                  for site in sites for room in site.rooms for group in room.duty_groups])
    if roles.simulator is not None:
        simulator = ids.add(roles.simulator, "simulator",
                            "publishes as the wireless devices it stands in for; its control topic")
        for site in sites:
            for topics in device_topics(site).values():
                simulator.allow("write", topics)
        simulator.allow("readwrite", [SIM_CONTROL_TOPIC])
    for site in sites:
        for edge in site.edges:
            box = ids.add(edge.username, "edge", f"edge {edge.id} (estate {site.site.id}, rooms "
                          f"{', '.join(edge.rooms)}): its own batches, alarm events and clock requests")
            box.allow("write", [batch_topic(edge.id), edge_alarm_topic(edge.id), time_topic(edge.id)])
            box.allow("read", [time_reply_topic(edge.id)])
    _monitor(ids, roles.monitor)
    return ids.listed()


def room_identities(site: Site, edge_id: str, roles: Roles) -> list[Identity]:
    """The identities of an edge box's own broker: the room's devices and the edge that reads them."""
    try:
        edge = site.edge(edge_id)
    except KeyError:
        known = ", ".join(e.id for e in site.edges) or "none"
        raise AclError(f"the site has no edge {edge_id!r} (edges: {known})") from None
    ids = _Identities()
    topics = _devices(ids, site, edge.rooms)
    box = ids.add(edge.username, "edge",
                  f"{edge.id} on its room's broker: reads its rooms' devices, announces its alarms")
    box.allow("read", [topic for listed in topics.values() for topic in listed])
    box.allow("write", [room_alarm_topics(site.site.id, room) for room in edge.rooms])
    _monitor(ids, roles.monitor)
    return ids.listed()


def _devices(ids: _Identities, site: Site, rooms: Sequence[str] | None) -> dict[int, list[str]]:
    topics = device_topics(site, rooms)
    for i, mapping in enumerate(site.mqtt):
        if not topics[i]:
            continue  # no sensor of these rooms comes through this map
        name = mapping.username or default_username(site, mapping)
        device = ids.add(name, "device", f"the devices of topic map {mapping.topic} ({site.site.id})",
                         shared=True)
        device.allow("write", topics[i])
    return topics


def _monitor(ids: _Identities, name: str | None) -> None:
    if name is not None:
        ids.add(name, "monitor", "reads the broker's uptime (health checks)").allow("read", [HEALTH_TOPIC])


class _Identities:
    """Identities by name; a name given to two roles is an error (devices may share one)."""

    def __init__(self) -> None:
        self._by_name: dict[str, Identity] = {}

    def add(self, name: str, role: str, purpose: str, *, shared: bool = False) -> Identity:
        if not name or any(c.isspace() for c in name) or ":" in name:
            raise AclError(f"identity {name!r}: a broker login has no spaces or ':'")
        found = self._by_name.get(name)
        if found is None:
            found = self._by_name[name] = Identity(name, role, purpose)
            return found
        if shared and found.role == "device" and role == "device":
            found.purpose += f"; {purpose.removeprefix('the devices of ')}"
            return found
        raise AclError(f"identity {name!r} is given twice ({found.role} and {role}): each process, edge "
                       "and topic map needs its own login")

    def listed(self) -> list[Identity]:
        return list(self._by_name.values())


# --- output ------------------------------------------------------------------------------------------


def render_acl(identities: Sequence[Identity], origin: str) -> str:
    """A Mosquitto `acl_file`: no rule for anonymous clients, then each identity's rules."""
    lines = [f"# Mosquitto acl_file generated by `{origin}`.",
             "# Do not edit: change the site file or the command's options and generate it again.",
             "# No rule applies to anonymous clients (the broker refuses them: allow_anonymous false)."]
    for identity in identities:
        lines += ["", f"# {identity.role}: {identity.purpose}", f"user {identity.name}"]
        lines += [f"topic {rule.access} {rule.topic}" for rule in identity.rules]
    return "\n".join(lines) + "\n"


def render_identities(identities: Sequence[Identity]) -> str:
    """The list of identities: name, role, what it is for and how many topic rules it has."""
    lines = ["| identity | role | for | rules |", "|---|---|---|---|"]
    lines += [f"| {i.name} | {i.role} | {i.purpose} | {len(i.rules)} |" for i in identities]
    return "\n".join(lines) + "\n"


def password_hash(password: str, salt: bytes | None = None) -> str:
    """A Mosquitto 2 password-file hash ($7$: PBKDF2-SHA512, as `mosquitto_passwd` writes it)."""
    salt = os.urandom(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, 64)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def read_passwords(path: Path) -> dict[str, str]:
    """`name:password` lines (blank lines and `#` comments skipped); AclError on anything else."""
    passwords: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, colon, password = line.partition(":")
        if not colon or not name or not password:
            raise AclError(f"{path}:{number}: write one identity a line as name:password")
        if name in passwords:
            raise AclError(f"{path}:{number}: a second password for {name!r}")
        passwords[name] = password
    return passwords


def render_password_file(identities: Sequence[Identity], passwords: dict[str, str]) -> tuple[str, list[str]]:
    """A Mosquitto `password_file` for the identities that have a password; and those that have none.

    AclError for a password of a name that is no identity (a typo would lock that process out).
    """
    names = {identity.name for identity in identities}
    strangers = sorted(set(passwords) - names)
    if strangers:
        raise AclError(f"passwords for {', '.join(strangers)}, which are not identities of this broker")
    lines = [f"{i.name}:{password_hash(passwords[i.name])}" for i in identities if i.name in passwords]
    missing = [i.name for i in identities if i.name not in passwords]
    return "".join(line + "\n" for line in lines), missing


def passwd_instructions(names: Sequence[str], password_file: str = "passwd", *, create: bool = True
                        ) -> list[str]:
    """The `mosquitto_passwd` commands that give these identities a password (it asks for each)."""
    return [f"mosquitto_passwd {'-c ' if create and i == 0 else ''}{password_file} {name}"
            for i, name in enumerate(names)]


def write_config(out: Path, identities: Sequence[Identity], origin: str,
                 passwords: dict[str, str] | None) -> list[str]:
    """Write `acl`, `identities.md` and (with passwords) `passwd` into `out`; the identities left without one.

    The password file is readable by its owner only (Mosquitto's user must own it).
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "acl").write_text(render_acl(identities, origin), encoding="utf-8")
    (out / "identities.md").write_text(render_identities(identities), encoding="utf-8")
    if passwords is None:
        return [i.name for i in identities]
    text, missing = render_password_file(identities, passwords)
    target = out / "passwd"
    target.touch(mode=0o600)
    target.chmod(0o600)
    target.write_text(text, encoding="utf-8")
    return missing


def run_command(paths: Sequence[Path], sites: Sequence[Site], roles: Roles,
                given: Mapping[str, Sequence[str]], *, edge: str | None, out: Path | None,
                passwords: Path | None) -> int:
    """`pumpwatch broker-acl` once its site files are loaded: print or write; its exit status.

    `given` holds the role options as typed (the ACL's first line repeats them, so the file says how
    to make it again); where the files go and the passwords are left out of it.
    """
    words = ["broker-acl", *(w for path in paths for w in ("--site", str(path)))]
    words += [w for option, names in given.items() for name in names for w in (f"--{option}", name)]
    origin = "pumpwatch " + shlex.join(words)
    try:
        if edge is not None:
            holders = [site for site in sites if any(e.id == edge for e in site.edges)]
            if len(holders) > 1:
                raise AclError(f"--edge {edge}: edge {edge!r} is in more than one estate")
            identities = room_identities(holders[0] if holders else sites[0], edge, roles)
        else:
            identities = centre_identities(sites, roles)
        known = read_passwords(passwords) if passwords is not None else None
        if out is None:
            print(render_acl(identities, origin), end="")
            return 0
        missing = write_config(out, identities, origin, known)
    except (AclError, OSError) as err:
        print(f"pumpwatch broker-acl: {err}", file=sys.stderr)
        return 2
    print(f"{out / 'acl'}: {len(identities)} identities (listed in {out / 'identities.md'})")
    if known is not None:
        print(f"{out / 'passwd'}: {len(identities) - len(missing)} passwords (PBKDF2-SHA512)")
    if missing:
        print("No password yet (they cannot log in) for: " + ", ".join(missing))
        print("Give each one with mosquitto_passwd (it asks for the password), e.g.:")
        for line in passwd_instructions(missing, str(out / "passwd"), create=known is None):
            print(f"  {line}")
    return 0

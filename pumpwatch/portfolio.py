"""The organisation's portfolio: organisation -> estates -> pump rooms.

A property-management company runs tens to hundreds of estates (项目 / 小区), each with its own pump
rooms; one deployment (one monitoring centre) watches all of them. An estate is one site file in the
format of `pumpwatch.site`; its id is the file's `site.id`. `PUMPWATCH_SITE` / `--site` names the
deployment in one of three forms (`load_portfolio`):

- **a site file**: one estate, exactly as before;
- **a folder**: each `*.yaml` / `*.yml` directly in it is an estate (sorted by name; hidden files left out);
- **a deployment file**: `kind: deployment`, the organisation's name and the estate files (paths or
  globs, relative to the deployment file):

      kind: deployment
      organisation: {zh: 某某物业, en: Some Property Management}
      estates: [estates/*.yaml, north/garden.yaml]

Ids stay unique within an estate; outside it the estate is an explicit field: the `estate` tag of every
stored point, the topics (`pumpwatch/alarms/<estate>/...`, `pumpwatch/live/<estate>/<room>`), alarm
keys, task keys (`<estate>:<plan>:<occurrence>`) and the `estate` column of the maintenance records.
Inside a collector a reading's sensor is one string, `<estate>/<sensor>` (`sensor_key`): the
pipeline (validation, durable buffer, writer) needs no second field, and the store splits it into its
two tags.

Across estates, what would make two of them one (`conflicts`): the same estate id, one Modbus
`host:port` claimed by two estates, one MQTT topic that two estates' topic maps both match, one edge id
or edge login in two estates. `pumpwatch check-site` reports each with file and line.
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from pumpwatch.model_base import Model, Text
from pumpwatch.site import BusTransport, Edge, Site
from pumpwatch.sitefile import (
    LocatedSite,
    SiteFileError,
    SiteIssue,
    YamlDocument,
    read_document,
    site_from_document,
    validation_issues,
)

KEY_SEPARATOR = "/"  # estate ids and sensor ids never hold one (`pumpwatch.model_base.Identifier`)
SITE_SUFFIXES = (".yaml", ".yml")


def sensor_key(estate: str, sensor: str) -> str:
    """The key of a sensor outside its estate: `<estate>/<sensor>`."""
    return f"{estate}{KEY_SEPARATOR}{sensor}"


def split_key(key: str) -> tuple[str, str]:
    """(estate, sensor) of a sensor key; a key without an estate gives `("", key)`."""
    estate, separator, sensor = key.partition(KEY_SEPARATOR)
    return (estate, sensor) if separator else ("", key)


class EstateRequired(LookupError):
    """A room or sensor id given without its estate in a deployment of several estates."""


class UnknownEstate(LookupError):
    """An estate id the deployment does not have."""


@dataclass(frozen=True)
class Portfolio:
    """The estates of one deployment, by id in file order, and the organisation that runs them."""

    organisation: Text
    estates: Mapping[str, Site]
    files: Mapping[str, str] = field(default_factory=dict)  # estate id -> its site file
    source: str | None = None  # the site file, folder or deployment file it was loaded from

    @classmethod
    def of(cls, *sites: Site, organisation: Text | None = None) -> Portfolio:
        """A portfolio of sites given as objects (tests, the demo); ValueError for an estate id twice."""
        estates: dict[str, Site] = {}
        for site in sites:
            if site.site.id in estates:
                raise ValueError(f"estate id {site.site.id!r} given twice")
            estates[site.site.id] = site
        if not estates:
            raise ValueError("a portfolio has at least one estate")
        name = organisation or (sites[0].site.name if len(sites) == 1
                                else Text(zh="物业公司", en="Organisation"))
        return cls(name, estates)

    def __iter__(self) -> Iterator[Site]:
        return iter(self.estates.values())

    def __len__(self) -> int:
        return len(self.estates)

    def __contains__(self, estate: object) -> bool:
        return estate in self.estates

    @property
    def sites(self) -> list[Site]:
        """Every estate's site, in file order."""
        return list(self.estates.values())

    @property
    def only(self) -> str | None:
        """The estate's id when the deployment has exactly one, else None."""
        return next(iter(self.estates)) if len(self.estates) == 1 else None

    @property
    def first(self) -> Site:
        """The first estate (the one of a single-estate deployment)."""
        return next(iter(self.estates.values()))

    def estate(self, estate: str) -> Site:
        """The site of one estate; `UnknownEstate` when the deployment has none of that id."""
        try:
            return self.estates[estate]
        except KeyError:
            raise UnknownEstate(f"no estate {estate!r} in this deployment "
                                f"(estates: {', '.join(self.estates)})") from None

    def resolve(self, estate: str | None) -> str:
        """The estate a room or sensor id belongs to: the one given, or the only one.

        `UnknownEstate` for an id the deployment lacks; `EstateRequired` when none is given and there
        are several.
        """
        if estate is not None:
            self.estate(estate)
            return estate
        only = self.only
        if only is None:
            raise EstateRequired(f"this deployment has {len(self.estates)} estates: say which one "
                                 f"(estate=..., one of {', '.join(self.estates)})")
        return only

    def edges(self) -> Iterator[tuple[str, Edge]]:
        """Every edge gateway with its estate."""
        for estate, site in self.estates.items():
            for edge in site.edges:
                yield estate, edge

    def edge_estates(self) -> dict[str, str]:
        """Edge id -> the estate it belongs to (edge ids are unique across estates)."""
        return {edge.id: estate for estate, edge in self.edges()}

    def with_estate(self, site: Site, file: str | None = None) -> Portfolio:
        """The portfolio with one estate added or replaced (kept in place when replaced)."""
        estates = dict(self.estates)
        estates[site.site.id] = site
        files = dict(self.files)
        if file is not None:
            files[site.site.id] = file
        return Portfolio(self.organisation, estates, files, self.source)

    def without(self, estate: str) -> Portfolio:
        """The portfolio without one estate."""
        estates = {k: v for k, v in self.estates.items() if k != estate}
        files = {k: v for k, v in self.files.items() if k != estate}
        return Portfolio(self.organisation, estates, files, self.source)

    def restricted(self, wanted: Iterable[str] | None) -> Portfolio:
        """Only the estates named (a collector serving a share of them); all when None."""
        if wanted is None:
            return self
        keep = set(wanted)
        estates = {k: v for k, v in self.estates.items() if k in keep}
        files = {k: v for k, v in self.files.items() if k in keep}
        return Portfolio(self.organisation, estates, files, self.source)


def as_portfolio(sites: Site | Portfolio) -> Portfolio:
    """A portfolio as it is, or a single site as a portfolio of one estate."""
    return sites if isinstance(sites, Portfolio) else Portfolio.of(sites)


# --- the deployment file ------------------------------------------------------------------------------


class DeploymentFile(Model):
    """A deployment file: the organisation and its estate files (paths or globs, relative to it)."""

    kind: Literal["deployment"]
    organisation: Text | str
    estates: tuple[str, ...] = Field(min_length=1)

    @property
    def name(self) -> Text:
        """The organisation's name in both languages."""
        return self.organisation if isinstance(self.organisation, Text) else Text(zh=self.organisation,
                                                                                     en=self.organisation)


@dataclass
class Scan:
    """What a deployment names, read file by file: the estates that load, the files that do not.

    `issues` are the deployment's own problems (a deployment file that does not parse, a glob that
    matches nothing); a broken estate file's problems are in `broken` under its path.
    """

    source: str
    organisation: Text
    files: list[str] = field(default_factory=list)  # every estate file named, in order
    loaded: dict[str, LocatedSite] = field(default_factory=dict)  # file -> its valid site
    broken: dict[str, list[SiteIssue]] = field(default_factory=dict)  # file -> why it cannot be used
    issues: list[SiteIssue] = field(default_factory=list)

    def problems(self) -> list[SiteIssue]:
        """Every problem: the deployment's, each broken file's, then what conflicts across estates."""
        out = list(self.issues)
        for file in self.files:
            out += self.broken.get(file, [])
        out += conflicts([self.loaded[f] for f in self.files if f in self.loaded])
        return out


def scan(source: str | Path) -> Scan:
    """Read every estate file a site file, folder or deployment file names (see the module)."""
    path = Path(source)
    name = str(source)
    if path.is_dir():
        files = sorted(str(p) for p in path.iterdir()
                       if p.suffix in SITE_SUFFIXES and not p.name.startswith(".") and p.is_file())
        found = Scan(name, Text(zh=path.resolve().name, en=path.resolve().name), files)
        if not files:
            found.issues.append(SiteIssue(name, 0, "", "the folder holds no site file (*.yaml)"))
        _read_estates(found)
        return found
    digest = _digest(name)
    outcome = _remembered(name, digest, named=True)
    if outcome is None:  # new bytes: a site file, or a deployment file naming the estates' files
        try:
            document = read_document(path)
            data = document.data
            if isinstance(data, dict) and "kind" in data:
                return _deployment(document, path)
            outcome = site_from_document(document)
        except SiteFileError as err:
            outcome = err.issues
        _remember(name, digest, outcome, named=True)
    found = Scan(name, Text(zh=path.stem, en=path.stem), [name])
    if isinstance(outcome, list):
        found.broken[name] = outcome
    else:
        found.loaded[name] = outcome
        found.organisation = outcome.site.site.name
    return found


def _deployment(document: YamlDocument, path: Path) -> Scan:
    name = document.file
    try:
        deployment = DeploymentFile.model_validate(document.data)
    except ValidationError as err:
        return Scan(name, Text(zh=path.stem, en=path.stem), issues=validation_issues(err, document))
    found = Scan(name, deployment.name)
    base = path.parent
    for i, pattern in enumerate(deployment.estates):
        target = base / pattern
        if glob.has_magic(pattern):
            matched = sorted(p for p in glob.glob(str(target)) if Path(p).suffix in SITE_SUFFIXES)
            if not matched:
                found.issues.append(document.issue(("estates", i), f"{pattern!r} matches no site file "
                                                                   f"(looked in {base or '.'})"))
        elif not target.is_file():
            found.issues.append(document.issue(("estates", i), f"no site file {str(target)!r}"))
            matched = []
        else:
            matched = [str(target)]
        for file in matched:
            if file in found.files:
                found.issues.append(document.issue(("estates", i), f"{file} is named twice"))
            else:
                found.files.append(file)
    _read_estates(found)
    return found


# (file, named) -> (digest of its bytes, what they parse to): a file whose bytes did not change is not
# parsed again. Every process that reloads scans the deployment every few seconds, and parsing and
# validating an estate's file costs tens of milliseconds of CPU (200 estates: seconds a scan); hashing its
# bytes, microseconds. `named`: the file `scan` was given itself, which may be a deployment file (never
# remembered: `scan` reads it each time); an estate file of a folder or deployment is read as a site
# whatever it holds, so the two are remembered apart.
_PARSED: dict[tuple[str, bool], tuple[str, LocatedSite | list[SiteIssue]]] = {}
_PARSED_MAX = 10_000  # distinct files remembered before the memo starts over


def _digest(file: str) -> str | None:
    try:
        return hashlib.blake2b(Path(file).read_bytes(), digest_size=16).hexdigest()
    except OSError:
        return None  # read_document says why, with the file's name


def _remembered(file: str, digest: str | None, *,
                named: bool = False) -> LocatedSite | list[SiteIssue] | None:
    """What the file parsed to when its bytes were the same; None when they were not (or unknown)."""
    known = _PARSED.get((file, named))
    return known[1] if digest is not None and known is not None and known[0] == digest else None


def _remember(file: str, digest: str | None, outcome: LocatedSite | list[SiteIssue], *,
              named: bool = False) -> None:
    if digest is not None:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[(file, named)] = (digest, outcome)


def _read_estates(found: Scan) -> None:
    for file in found.files:
        digest = _digest(file)
        outcome = _remembered(file, digest)
        if outcome is None:
            try:
                outcome = site_from_document(read_document(file))
            except SiteFileError as err:
                outcome = err.issues
            _remember(file, digest, outcome)
        if isinstance(outcome, list):
            found.broken[file] = outcome
        else:
            found.loaded[file] = outcome


def load_portfolio(source: str | Path) -> Portfolio:
    """Every estate of a deployment, all valid and without conflicts; `SiteFileError` with every problem."""
    found = scan(source)
    problems = found.problems()
    if problems:
        raise SiteFileError(problems)
    estates = {found.loaded[f].site.site.id: found.loaded[f].site for f in found.files}
    files = {found.loaded[f].site.site.id: f for f in found.files}
    return Portfolio(found.organisation, estates, files, found.source)


# --- across estates -----------------------------------------------------------------------------------


def conflicts(estates: Sequence[LocatedSite]) -> list[SiteIssue]:
    """What two estates of one deployment may not share (each reported at the later file's line)."""
    out: list[SiteIssue] = []
    ids: dict[str, LocatedSite] = {}
    endpoints: dict[tuple[str, int], tuple[LocatedSite, str]] = {}
    topics: list[tuple[str, LocatedSite, int]] = []
    edges: dict[str, LocatedSite] = {}
    logins: dict[str, LocatedSite] = {}
    for located in estates:
        site = located.site
        estate = site.site.id
        first = ids.get(estate)
        if first is not None:
            out.append(located.issue(("site", "id"), f"estate id {estate!r} is already the estate of "
                                                     f"{_where(first, ('site', 'id'))}: one id per estate"))
            continue
        ids[estate] = located
        claimed: list[tuple[tuple[str, int], tuple[str | int, ...], str]] = []
        for d, device in enumerate(site.modbus):
            if device.bus is None and device.port != 0:
                claimed.append(((device.host, device.port), ("modbus", d, "host"), f"modbus[{d}]"))
        for b, bus in enumerate(site.buses):
            if bus.transport is BusTransport.TCP and bus.host is not None and bus.tcp_port != 0:
                claimed.append(((bus.host, bus.tcp_port), ("buses", b, "host"), f"buses[{b}]"))
        mine: set[tuple[str, int]] = set()
        for endpoint, path, _label in claimed:
            owner = endpoints.get(endpoint)
            if owner is not None and endpoint not in mine:
                other, other_path = owner
                out.append(located.issue(path, f"{endpoint[0]}:{endpoint[1]} is already a Modbus endpoint of "
                                               f"estate {other.site.site.id!r} ({other_path}): one "
                                               "device or gateway belongs to one estate"))
            elif owner is None:
                endpoints[endpoint] = (located, _where(located, path))
            mine.add(endpoint)
        for m, mapping in enumerate(site.mqtt):
            for other_filter, other, other_index in topics:
                if other is not located and filters_overlap(mapping.subscription, other_filter):
                    where = _where(other, ("mqtt", other_index, "topic"))
                    out.append(located.issue(("mqtt", m, "topic"),
                                             f"topic {mapping.topic!r} can carry the same messages as "
                                             f"{other.site.mqtt[other_index].topic!r} of estate "
                                             f"{other.site.site.id!r} ({where}): one topic belongs to one "
                                             "estate (give each estate's devices their own topic prefix)"))
                    break
        topics += [(mapping.subscription, located, m) for m, mapping in enumerate(site.mqtt)]
        for e, edge in enumerate(site.edges):
            owner_site = edges.get(edge.id)
            if owner_site is not None:
                out.append(located.issue(("edges", e, "id"),
                                         f"edge id {edge.id!r} is already an edge of estate "
                                         f"{owner_site.site.site.id!r}: edge ids are unique across the "
                                         "deployment (its topics carry only it)"))
            else:
                edges[edge.id] = located
            owner_login = logins.get(edge.username)
            if owner_login is not None:
                out.append(located.issue(("edges", e, "username"),
                                         f"username {edge.username!r} is already an edge login of estate "
                                         f"{owner_login.site.site.id!r}: one login per edge"))
            else:
                logins[edge.username] = located
    return out


def _where(located: LocatedSite, path: tuple[str | int, ...]) -> str:
    issue = located.issue(path, "")
    return f"{issue.file}:{issue.line}" if issue.line else issue.file


def filters_overlap(a: str, b: str) -> bool:
    """Whether some topic matches both MQTT topic filters (`+` one level, `#` the rest, even none)."""
    left, right = a.split("/"), b.split("/")
    for i in range(max(len(left), len(right))):
        x = left[i] if i < len(left) else None
        y = right[i] if i < len(right) else None
        if x == "#" or y == "#":
            return True
        if x is None or y is None:
            return False
        if x != y and x != "+" and y != "+":
            return False
    return True


def summary(portfolio: Portfolio) -> str:
    """One line: how many estates and rooms the deployment holds."""
    rooms = sum(len(site.rooms) for site in portfolio)
    count = len(portfolio)
    return (f"deployment {portfolio.organisation.zh} / {portfolio.organisation.en}: "
            f"{count} estate{'s' if count != 1 else ''} ({', '.join(portfolio.estates)}), "
            f"{rooms} room{'s' if rooms != 1 else ''}")

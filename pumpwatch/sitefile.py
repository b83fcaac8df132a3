"""Load a site file: YAML -> validated `Site`, with every error located by file, line and field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import yaml
from pydantic import ValidationError

from pumpwatch.site import Site
from pumpwatch.sitecheck import Path, Problem, check_references, dotted

MAX_SITE_FILE_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class SiteIssue:
    """A located problem: file, line (1-based, 0 if unknown), field path and message."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class SiteFileError(Exception):
    """The site file cannot be used; `issues` says where and why."""

    def __init__(self, issues: list[SiteIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


@dataclass(frozen=True)
class LocatedSite:
    """A valid site with the file it came from and the line of each of its keys (for later checks)."""

    site: Site
    file: str
    lines: dict[Path, int]

    def issue(self, path: Path, message: str) -> SiteIssue:
        """A problem at `path` of this file, located at the line of the deepest key the file has."""
        return _locate(Problem(path, message), self.lines, self.file)


@dataclass(frozen=True)
class YamlDocument:
    """A YAML file read as data, with the line of each key and item."""

    data: Any
    file: str
    lines: dict[Path, int]

    def issue(self, path: Path, message: str) -> SiteIssue:
        """A problem at `path` of this document."""
        return _locate(Problem(path, message), self.lines, self.file)


def load_site(path: str | FsPath) -> Site:
    """Read and validate a site file, raising `SiteFileError` with located messages."""
    return read_site(path).site


def read_site(path: str | FsPath) -> LocatedSite:
    """Read and validate a site file, keeping its line index; `SiteFileError` with located messages."""
    return site_from_document(read_document(path))


def read_document(path: str | FsPath) -> YamlDocument:
    """Read a YAML file (a site or a deployment file) as data; `SiteFileError` when it cannot be read."""
    name = str(path)
    try:
        raw = FsPath(path).read_bytes()
    except OSError as err:
        raise SiteFileError([SiteIssue(name, 0, "", f"cannot read: {err.strerror}")]) from err
    if len(raw) > MAX_SITE_FILE_BYTES:
        raise SiteFileError([SiteIssue(name, 0, "", f"larger than {MAX_SITE_FILE_BYTES} bytes")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SiteFileError([SiteIssue(name, 0, "", f"not UTF-8 text ({err.reason})")]) from err
    return parse_document(text, name)


def parse_document(text: str, name: str = "<site>") -> YamlDocument:
    """YAML text as data with its line index; `SiteFileError` for bad YAML or a key given twice."""
    data, lines, dup_issues = _read_yaml(text, name)
    if dup_issues:
        raise SiteFileError(dup_issues)
    return YamlDocument(data, name, lines)


def parse_site(text: str, name: str = "<site>") -> Site:
    """Validate site YAML given as text; `name` is used in messages."""
    return site_from_document(parse_document(text, name)).site


def site_from_document(document: YamlDocument) -> LocatedSite:
    """Validate a document as a site file: shape, then what crosses its sections."""
    data, lines, name = document.data, document.lines, document.file
    if not isinstance(data, dict):
        raise SiteFileError([SiteIssue(name, 1, "", "a site file is a mapping with site, rooms, ...")])
    try:
        site = Site.model_validate(data)
    except ValidationError as err:
        raise SiteFileError(_from_validation(err, data, lines, name)) from None
    problems = check_references(site)
    if problems:
        raise SiteFileError([_locate(p, lines, name) for p in problems])
    return LocatedSite(site, name, lines)


def _read_yaml(text: str, name: str) -> tuple[Any, dict[Path, int], list[SiteIssue]]:
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as err:  # a character YAML does not allow, before parsing starts
        line = text[: err.position].count("\n") + 1
        char = f"U+{err.character:04X}" if isinstance(err.character, int) else repr(err.character)
        raise SiteFileError([SiteIssue(name, line, "", f"YAML: character {char} is not allowed "
                                                        "in a YAML file")]) from None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 0
        msg = " ".join(x for x in (err.context, err.problem) if x) or "invalid YAML"
        raise SiteFileError([SiteIssue(name, line, "", f"YAML: {msg}")]) from None
    except yaml.YAMLError as err:
        raise SiteFileError([SiteIssue(name, 0, "", f"YAML: {err}")]) from None
    finally:
        loader.dispose()
    lines: dict[Path, int] = {}
    duplicates: list[SiteIssue] = []
    if node is not None:
        _index(node, (), lines, duplicates, name)
    return data, lines, duplicates


def _index(node: yaml.Node, path: Path, lines: dict[Path, int],
           duplicates: list[SiteIssue], name: str) -> None:
    """Record the line of every key and item; report keys given twice in one mapping."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key in seen:
                duplicates.append(SiteIssue(name, key_node.start_mark.line + 1, dotted(child),
                                            "key given twice in the same mapping"))
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            _index(value_node, child, lines, duplicates, name)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), lines, duplicates, name)


def validation_issues(err: ValidationError, document: YamlDocument) -> list[SiteIssue]:
    """A model's validation errors on a document, each located at its line."""
    return _from_validation(err, document.data, document.lines, document.file)


def _from_validation(err: ValidationError, data: Any, lines: dict[Path, int],
                     name: str) -> list[SiteIssue]:
    issues = []
    errors = err.errors(include_url=False)
    for e in errors:
        if e["type"] == "too_short" and any(
                o is not e and o["loc"][: len(e["loc"])] == e["loc"] and len(o["loc"]) > len(e["loc"])
                for o in errors):
            continue  # a list that is only "too short" because its items failed: report the items
        path = _data_path(e["loc"], data)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "union_tag_invalid":
            ctx = e.get("ctx") or {}
            msg = f"unknown type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
        issues.append(_locate(Problem(path, msg), lines, name))
    return issues


def _data_path(loc: tuple[int | str, ...], data: Any) -> Path:
    """Map pydantic's location onto the data: drop union-tag parts, keep what the file has."""
    path: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
        elif isinstance(node, dict) and node.get("type") == part:
            continue  # the discriminated-union member name, not a key of the file
        else:
            node = None
        path.append(part)
    return tuple(path)


def _locate(problem: Problem, lines: dict[Path, int], name: str) -> SiteIssue:
    """Attach the line of the deepest part of the path that the file has."""
    probe = problem.path
    while probe and probe not in lines:
        probe = probe[:-1]
    return SiteIssue(name, lines.get(probe, 0), dotted(problem.path), problem.message)

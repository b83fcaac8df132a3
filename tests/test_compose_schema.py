"""The compose files validate against the Compose Specification's JSON schema, as Compose reads them.

Compose interpolates `${VAR}` in every string value of the parsed YAML before it validates; the test does
the same with a value for each variable the files ask for, then validates against the vendored schema
(tests/vendor/compose-spec.json). Docker cannot run here; tests/test_compose.py checks the files against
the code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "tests" / "vendor" / "compose-spec.json").read_text(encoding="utf-8"))
COMPOSE_FILES = ["docker-compose.yml", "examples/edge-compose.yml"]

# Compose's interpolation: $$ is a dollar; ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error},
# ${NAME?error}, ${NAME:+alt}, ${NAME+alt}, and $NAME.
_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?"
                       r"(?P<arg>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


class Unset(ValueError):
    """A required variable without a value (Compose refuses the file)."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """`text` with its variables replaced as Compose replaces them."""
    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        value, op, arg = env.get(name), match["op"] or "", match["arg"] or ""
        if op in (":-", "-"):
            return value if value is not None and (op == "-" or value != "") else arg
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise Unset(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            return arg if value is not None and (op == "+" or value != "") else ""
        return value or ""
    return _VARIABLE.sub(one, text)


def interpolated(node: Any, env: dict[str, str]) -> Any:
    """Every string in a parsed YAML document interpolated (keys stay as written, as in Compose)."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: interpolated(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolated(value, env) for value in node]
    return node


def asked_for(text: str) -> set[str]:
    """The variables a compose file names."""
    return {m["braced"] or m["bare"] for m in _VARIABLE.finditer(text) if not m["escaped"]}


def problems(document: Any) -> list[str]:
    """The schema's complaints about a compose document, each with its place."""
    validator = jsonschema_rs.validator_for(SCHEMA)
    return [f"{'/'.join(str(p) for p in error.instance_path)}: {error.message}"
            for error in validator.iter_errors(document)]


def loaded(name: str) -> Any:
    text = (ROOT / name).read_text(encoding="utf-8")
    env = {variable: f"value-of-{variable.lower()}" for variable in asked_for(text)}
    return interpolated(yaml.safe_load(text), env)


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_the_compose_file_validates_against_the_compose_specification(name: str) -> None:
    document = loaded(name)
    assert document.get("services"), name
    assert problems(document) == []


def test_the_files_use_what_needs_compose_2_23() -> None:
    """The README's version note is needed: top-level `name` and inline `configs.content`."""
    document = loaded("docker-compose.yml")
    assert document["name"] == "pumpwatch"
    assert any("content" in config for config in document["configs"].values())


@pytest.mark.parametrize(("break_it", "complaint"), [
    (lambda d: d["configs"][next(iter(d["configs"]))].update(content=["not", "a", "string"]), "configs/"),
    (lambda d: d.update(volumez={}), "volumez"),
    (lambda d: d["services"][next(iter(d["services"]))].update(restart=["always"]), "services/"),
])
def test_a_broken_copy_is_refused_with_its_place(break_it: Any, complaint: str) -> None:
    document = loaded("docker-compose.yml")
    break_it(document)
    found = problems(document)
    assert found
    assert any(complaint in problem for problem in found), found


def test_interpolation_follows_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("a $$b ${SET} $SET ${NOPE:-d} ${EMPTY:-d} ${EMPTY-d} ${SET:+alt} ${NOPE+alt}", env) \
        == "a $b x x d d  alt "
    with pytest.raises(Unset, match="NOPE: set it"):
        interpolate("${NOPE:?set it}", env)
    with pytest.raises(Unset):
        interpolate("${EMPTY:?set it}", env)

"""The hash-pinned locks agree with pyproject.toml, and the installs use them.

requirements/runtime.lock (the image) and requirements/test.lock (scripts/test) are made by
`scripts/lock` from pyproject.toml's dependencies (and its `test` extra) and requirements/build.in.
A dependency added to, removed from or narrowed in pyproject.toml without running `scripts/lock`
fails here, naming it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
# The markers of the platform the locks are made for (scripts/lock: CPython 3.11, Linux x86_64).
TARGET = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
          "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
          "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def _requirements(section: list[str]) -> list[Requirement]:
    return [r for r in map(Requirement, section) if r.marker is None or r.marker.evaluate(TARGET)]


RUNTIME = _requirements(PYPROJECT["project"]["dependencies"])
TEST = _requirements(PYPROJECT["project"]["optional-dependencies"]["test"])
_BUILD_IN = (ROOT / "requirements" / "build.in").read_text(encoding="utf-8").splitlines()
BUILD = _requirements([line.split("#")[0].strip() for line in _BUILD_IN if line.split("#")[0].strip()])


def _lock(name: str) -> tuple[dict[str, Version], dict[str, int], set[str]]:
    """(pins, hashes per pin, the names it says come from pyproject.toml itself) of a lock file."""
    pins: dict[str, Version] = {}
    hashes: dict[str, int] = {}
    direct: set[str] = set()
    current = ""
    for line in (ROOT / "requirements" / name).read_text(encoding="utf-8").splitlines():
        found = _PIN.match(line)
        if found:
            current = str(canonicalize_name(found.group(1)))
            pins[current] = Version(found.group(2))
            hashes[current] = 0
        elif line.strip().startswith("--hash=sha256:"):
            hashes[current] += 1
        elif line.strip().startswith("#") and "pumpwatch (pyproject.toml)" in line and current:
            direct.add(current)  # in the pin's "# via" lines
    return pins, hashes, direct


@pytest.mark.parametrize(("lock", "wanted"), [("runtime.lock", RUNTIME + BUILD),
                                              ("test.lock", RUNTIME + TEST + BUILD)])
def test_each_dependency_is_pinned_within_what_pyproject_allows(lock: str, wanted: list[Requirement]) -> None:
    pins, hashes, _direct = _lock(lock)
    for requirement in wanted:
        name = str(canonicalize_name(requirement.name))
        assert name in pins, f"{name} is in pyproject.toml but not in requirements/{lock}: run scripts/lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements/{lock} pins {name}=={pins[name]}, outside {requirement.specifier}: "
            "run scripts/lock")
    assert all(count > 0 for count in hashes.values()), f"a pin without its hash in requirements/{lock}"


@pytest.mark.parametrize(("lock", "allowed"), [("runtime.lock", RUNTIME), ("test.lock", RUNTIME + TEST)])
def test_nothing_is_locked_for_a_dependency_pyproject_no_longer_has(lock: str, allowed: list[Requirement]
                                                                      ) -> None:
    _pins, _hashes, direct = _lock(lock)
    names = {str(canonicalize_name(r.name)) for r in allowed}
    assert direct, f"requirements/{lock} says which pins come from pyproject.toml"
    assert direct <= names, f"requirements/{lock} still pins {sorted(direct - names)}: run scripts/lock"


def test_the_tests_run_what_the_image_runs() -> None:
    runtime, _h, _d = _lock("runtime.lock")
    test, _h, _d = _lock("test.lock")
    differ = {name: (pinned, test.get(name)) for name, pinned in runtime.items() if test.get(name) != pinned}
    assert not differ, f"runtime.lock and test.lock pin differently (run scripts/lock): {differ}"


def test_the_installs_use_the_locks_with_their_hashes() -> None:
    script = (ROOT / "scripts" / "test").read_text(encoding="utf-8")
    assert "--require-hashes -r requirements/test.lock" in script
    assert "--no-deps --no-build-isolation -e ." in script
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "--require-hashes -r requirements/runtime.lock" in dockerfile
    assert "--no-deps --no-build-isolation ." in dockerfile
    builds = PYPROJECT["build-system"]["requires"]
    assert {str(canonicalize_name(Requirement(r).name)) for r in builds} <= {
        str(canonicalize_name(r.name)) for r in BUILD}, "requirements/build.in names the build system"

"""The import contracts in pyproject.toml hold for the tree and catch an import against the direction."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pumpwatch", "collector", "maintenance", "api", "inspection", "simulators")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path, contract: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(tree))  # the copy's packages win over the installed ones
    only = ["--contract", contract] if contract else []
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", *only, str(tree / "pyproject.toml")], cwd=tree,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(ROOT / "pyproject.toml", tree)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__", "web"))
    return tree


def test_the_tree_keeps_every_import_contract(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "bad_import", "contract"), [
    ("collector/metrics.py", "import maintenance.tasks", "collector-knows-no-state"),
    ("maintenance/tasks.py", "import api.app", "maintenance-side"),
    ("maintenance/alarms.py", "import collector.service", "collector-apart"),
    ("pumpwatch/site.py", "import collector.pipeline.buffer", "collector-side"),
    ("inspection/rotation.py", "import collector.sources.modbus", "no-roles-in-http"),
    ("api/routes/plans.py", "import inspection.scheduler", "maintenance-side"),
    ("simulators/model.py", "import collector.metrics", "collector-side"),
])
def test_an_import_against_the_direction_breaks_a_contract(tmp_path: Path, module: str, bad_import: str,
                                                           contract: str) -> None:
    tree = _copy(tmp_path)
    path = tree / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{bad_import}  # against the direction\n",
                    encoding="utf-8")
    assert _lint(tree).returncode != 0
    result = _lint(tree, contract)
    assert result.returncode != 0, f"contract {contract} kept:\n{result.stdout}"
    assert "1 broken" in result.stdout
    assert bad_import.split()[-1] in result.stdout


COMPOSITION_ROOT = frozenset({"pumpwatch.cli", "pumpwatch.stack", "pumpwatch.demo_seed"})


_CYCLES = """
import json, sys
import grimp
packages, root = sys.argv[1].split(","), set(sys.argv[2].split(","))
graph = grimp.build_graph(*packages, cache_dir=None)
edges = set()
for module in graph.modules:
    if module in root:
        continue
    for imported in graph.find_modules_directly_imported_by(module):
        depth = 1 if module.split(".")[0] != imported.split(".")[0] else 2
        a, b = ".".join(module.split(".")[:depth]), ".".join(imported.split(".")[:depth])
        if a != b:
            edges.add((a, b))
print(json.dumps(sorted([a, b] for a, b in edges if (b, a) in edges and a < b)))
"""


def _package_cycles(tree: Path) -> list[tuple[str, str]]:
    """Pairs of packages (top level, and second level within one) that import each other.

    In a fresh interpreter on the copy: modules this process has imported would hide the copy's.
    """
    env = dict(os.environ, PYTHONPATH=str(tree))
    result = subprocess.run([sys.executable, "-c", _CYCLES, ",".join(PACKAGES), ",".join(COMPOSITION_ROOT)],
                            cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=True)
    return [(a, b) for a, b in json.loads(result.stdout)]


def test_no_two_packages_import_each_other_outside_the_composition_root(tmp_path: Path) -> None:
    assert _package_cycles(_copy(tmp_path)) == []


def test_a_cycle_between_two_subpackages_is_found(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    path = tree / "collector" / "metrics.py"  # the pipeline imports the metrics; now they import it back
    path.write_text(path.read_text(encoding="utf-8") + "\nimport collector.pipeline.sink  # back again\n",
                    encoding="utf-8")
    assert _package_cycles(tree) == [("collector.metrics", "collector.pipeline")]

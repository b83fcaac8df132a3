"""A deployment scanned again parses only the files whose bytes changed (reload's polling stays cheap)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pumpwatch import portfolio
from pumpwatch.portfolio import scan
from pumpwatch.sitefile import read_document

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the scan parses, in order (`read_document` counted)."""
    files: list[str] = []

    def counting(file: str | Path) -> object:
        files.append(str(file))
        return read_document(file)

    monkeypatch.setattr(portfolio, "read_document", counting)
    return files


def test_an_unchanged_file_is_not_parsed_again_and_a_changed_one_is(tmp_path: Path,
                                                                    parsed: list[str]) -> None:
    shutil.copy(EXAMPLE, tmp_path / "a.yaml")
    first = scan(tmp_path)
    assert [Path(p).name for p in parsed] == ["a.yaml"]
    again = scan(tmp_path)
    assert [Path(p).name for p in parsed] == ["a.yaml"]  # same bytes: the memo answers
    assert again.loaded == first.loaded
    text = (tmp_path / "a.yaml").read_text(encoding="utf-8")
    (tmp_path / "a.yaml").write_text(text.replace("harbour-view", "harbour-east", 1), encoding="utf-8")
    changed = scan(tmp_path)
    assert [Path(p).name for p in parsed] == ["a.yaml", "a.yaml"]
    assert [s.site.site.id for s in changed.loaded.values()] == ["harbour-east"]
    (tmp_path / "a.yaml").write_text("site: [", encoding="utf-8")  # broken: its problems, remembered too
    broken = scan(tmp_path)
    assert str(tmp_path / "a.yaml") in broken.broken
    assert scan(tmp_path).broken == broken.broken
    assert len(parsed) == 3


def test_a_single_site_file_is_not_parsed_again_either(tmp_path: Path, parsed: list[str]) -> None:
    """`--site site.yaml` (one estate, no folder): the reload's scan every few seconds reads the bytes
    and parses only when they changed."""
    site = tmp_path / "site.yaml"
    shutil.copy(EXAMPLE, site)
    first = scan(site)
    again = scan(site)
    assert len(parsed) == 1
    assert again.loaded == first.loaded
    assert again.organisation == first.organisation
    assert again.files == [str(site)]
    text = site.read_text(encoding="utf-8")
    site.write_text(text.replace("harbour-view", "harbour-east", 1), encoding="utf-8")
    assert [s.site.site.id for s in scan(site).loaded.values()] == ["harbour-east"]
    assert len(parsed) == 2
    site.write_text("site: [", encoding="utf-8")
    broken = scan(site)
    assert str(site) in broken.broken
    assert not broken.loaded
    assert scan(site).broken == broken.broken
    assert len(parsed) == 3
    site.write_text(text, encoding="utf-8")  # back to bytes parsed before: parsed again, then remembered
    assert [s.site.site.id for s in scan(site).loaded.values()] == ["harbour-view"]
    assert len(parsed) == 4


def test_a_deployment_file_read_as_an_estate_elsewhere_stays_a_deployment(tmp_path: Path) -> None:
    """A folder scan reads every YAML file in it as an estate, the deployment file too (broken as a
    site); that must not become the answer for the deployment file itself, whose estates it names."""
    (tmp_path / "estates").mkdir()
    shutil.copy(EXAMPLE, tmp_path / "estates" / "a.yaml")
    deployment = tmp_path / "deployment.yaml"
    deployment.write_text("kind: deployment\norganisation: Org\nestates: [estates/*.yaml]\n",
                          encoding="utf-8")
    first = scan(deployment)
    assert first.files == [str(tmp_path / "estates" / "a.yaml")]
    folder = scan(tmp_path)
    assert str(deployment) in folder.broken  # as an estate, a deployment file is not a site
    again = scan(deployment)
    assert again.files == first.files
    assert again.loaded == first.loaded
    assert not again.broken


def test_a_deployment_that_globs_itself_answers_the_same_every_scan(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "a.yaml")
    deployment = tmp_path / "deployment.yaml"
    deployment.write_text("kind: deployment\norganisation: Org\nestates: ['*.yaml']\n", encoding="utf-8")
    first, second = scan(deployment), scan(deployment)
    assert (second.files, sorted(second.loaded), sorted(second.broken)) == (
        first.files, sorted(first.loaded), sorted(first.broken))
    assert str(tmp_path / "a.yaml") in second.loaded

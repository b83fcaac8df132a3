"""The fleet generator: deterministic, varied, and every file of 200 estates passes check-site."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pumpwatch.cli import main
from pumpwatch.portfolio import Portfolio, load_portfolio, scan
from pumpwatch.site import Pump, PumpKind, Site, Sump, Tank
from simulators.fleet import write_fleet


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.yaml"))}


def test_the_same_seed_writes_the_same_bytes_and_another_seed_other_estates(tmp_path: Path) -> None:
    first = write_fleet(tmp_path / "a", 12, seed=5, feed="mixed")
    again = write_fleet(tmp_path / "b", 12, seed=5, feed="mixed")
    other = write_fleet(tmp_path / "c", 12, seed=6, feed="mixed")
    assert first.name == "deployment.yaml"
    assert _files(first.parent) == _files(again.parent)
    assert _files(first.parent) != _files(other.parent)


def test_a_small_fleet_is_the_first_estates_of_a_large_one(tmp_path: Path) -> None:
    small = load_portfolio(write_fleet(tmp_path / "small", 3, seed=9))
    large = load_portfolio(write_fleet(tmp_path / "large", 30, seed=9))
    assert list(small.estates) == list(large.estates)[:3]
    for estate, site in small.estates.items():
        assert site == large.estates[estate]


def _pumps(site: Site) -> list[Pump]:
    return [eq for room in site.rooms for eq in room.equipment if isinstance(eq, Pump)]


@pytest.mark.parametrize("feed", ["edge", "modbus", "mqtt", "mixed"])
def test_two_hundred_estates_pass_check_site_with_no_conflict_between_them(
        tmp_path: Path, feed: str, capsys: pytest.CaptureFixture[str]) -> None:
    deployment = write_fleet(tmp_path, 200, seed=2026, feed=feed)
    found = scan(deployment)
    assert found.problems() == []
    assert main(["check-site", str(deployment)]) == 0
    assert "200 estates" in capsys.readouterr().out
    portfolio = Portfolio.of(*(found.loaded[f].site for f in found.files))  # loading 200 takes long
    assert len(portfolio) == 200
    names = [site.site.name for site in portfolio]
    assert len({n.zh for n in names}) == len({n.en for n in names}) == 200
    # What the cross-estate checks look at is unique by construction, not by luck of the draw.
    endpoints = [(d.host, d.port) for site in portfolio for d in site.modbus]
    assert len(endpoints) == len(set(endpoints))
    edges = [(edge.id, edge.username) for _estate, edge in portfolio.edges()]
    assert len({e for e, _u in edges}) == len({u for _e, u in edges}) == len(edges)
    if feed == "edge":
        assert len(edges) == 200


def test_the_fleet_is_varied_within_the_rules(tmp_path: Path) -> None:
    portfolio = load_portfolio(write_fleet(tmp_path, 200, seed=11))
    sites = portfolio.sites
    rooms = Counter(len(site.rooms) for site in sites)
    assert set(rooms) == {1, 2}
    sensors = sum(1 for site in sites for _r, _e, s in site.iter_sensors() if s.source != "edge")
    assert 35 <= sensors / sum(rooms[n] * n for n in rooms) <= 50  # about 40 a room
    assert len({site.site.region for site in sites}) > 3
    assert len({site.site.group for site in sites}) > 3
    assert len({p.rated_current for site in sites for p in _pumps(site)}) > 10
    assert len({eq.height for site in sites for room in site.rooms for eq in room.equipment
                if isinstance(eq, Tank)}) > 2
    for site in sites:
        kinds = Counter(p.kind for p in _pumps(site))
        assert kinds[PumpKind.DOMESTIC] >= 2
        assert kinds[PumpKind.FIRE] >= 1
        assert kinds[PumpKind.SEWAGE] >= 1
        assert any(isinstance(eq, Sump) for room in site.rooms for eq in room.equipment)
        for room in site.rooms:
            for group in room.duty_groups:  # rule 4: domestic pumps share a duty, switched by pressure
                assert len(group.pumps) >= 2
                assert group.control.start_pressure < group.control.stop_pressure
        for pump in _pumps(site):
            if pump.kind is PumpKind.DOMESTIC:
                assert pump.duty_group is not None


def test_bad_arguments_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown feed"):
        write_fleet(tmp_path, 2, seed=1, feed="carrier-pigeon")
    with pytest.raises(ValueError, match="at least one estate"):
        write_fleet(tmp_path, 0, seed=1)
    with pytest.raises(ValueError, match="rooms"):
        write_fleet(tmp_path, 2, seed=1, rooms=(2, 1))
    assert not (tmp_path / "deployment.yaml").exists()

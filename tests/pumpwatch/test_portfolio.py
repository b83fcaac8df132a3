"""The portfolio: a deployment as a site file, a folder of them, or a deployment file; what estates share."""

from __future__ import annotations

from pathlib import Path

import pytest

from pumpwatch.cli import main
from pumpwatch.portfolio import (
    EstateRequired,
    Portfolio,
    UnknownEstate,
    filters_overlap,
    load_portfolio,
    sensor_key,
    split_key,
)
from pumpwatch.sitefile import SiteFileError

ROOT = Path(__file__).resolve().parents[2]


def estate_yaml(estate: str, *, topic: str | None = None, port: int = 5100, edge: str | None = None,
                name: str | None = None) -> str:
    """A small estate: one room, a pump on a Modbus meter, a leak sensor on MQTT (topic prefix = estate)."""
    prefix = topic if topic is not None else estate
    edges = (f"edges:\n  - {{id: {edge}, rooms: [room1], username: {edge}-login}}\n" if edge else "")
    return f"""site:
  id: {estate}
  name: {{zh: {name or estate}, en: {name or estate}}}
  region: north
  group: team-a
rooms:
  - id: room1
    name: {{zh: 泵房, en: Pump room}}
    sensors:
      - {{id: room1-leak, kind: leak, source: mqtt}}
    equipment:
      - id: pump1
        type: pump
        kind: domestic
        rated_current: 10
        sensors:
          - {{id: pump1-current, kind: current, source: modbus}}
modbus:
  - id: meter1
    host: 127.0.0.1
    port: {port}
    points:
      - {{sensor: pump1-current, table: input, address: 0}}
mqtt:
  - topic: {prefix}/zigbee/{{device}}
    values: [{{field: water_leak, type: boolean, sensor: "{{device}}"}}]
{edges}"""


def three_estates(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, estate in enumerate(("north-garden", "south-court", "east-park")):
        (folder / f"{estate}.yaml").write_text(estate_yaml(estate, port=5100 + i), encoding="utf-8")
    return folder


def test_a_folder_of_three_estates_loads_each_file_as_an_estate(tmp_path: Path) -> None:
    portfolio = load_portfolio(three_estates(tmp_path / "estates"))
    assert list(portfolio.estates) == ["east-park", "north-garden", "south-court"]  # sorted by file name
    assert portfolio.files["north-garden"] == str(tmp_path / "estates" / "north-garden.yaml")
    assert portfolio.organisation.en == "estates"  # a folder is named after itself
    assert portfolio.only is None
    site = portfolio.estate("south-court")
    assert (site.site.region, site.site.group) == ("north", "team-a")
    assert [room.id for room in site.rooms] == ["room1"]  # room ids repeat across estates


def test_a_single_site_file_is_one_estate_as_before() -> None:
    portfolio = load_portfolio(ROOT / "examples" / "site.yaml")
    assert list(portfolio.estates) == ["harbour-view"]
    assert portfolio.only == "harbour-view"
    assert portfolio.resolve(None) == "harbour-view"
    assert portfolio.organisation == portfolio.first.site.name


def test_a_deployment_file_names_the_organisation_and_its_estate_files_by_glob(tmp_path: Path) -> None:
    three_estates(tmp_path / "estates")
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "west-hill.yaml").write_text(estate_yaml("west-hill", port=5200), encoding="utf-8")
    deployment = tmp_path / "deployment.yaml"
    deployment.write_text("kind: deployment\norganisation: {zh: 海湾物业, en: Bay Property}\n"
                          "estates: [estates/*.yaml, more/west-hill.yaml]\n", encoding="utf-8")
    portfolio = load_portfolio(deployment)
    assert portfolio.organisation.en == "Bay Property"
    assert list(portfolio.estates) == ["east-park", "north-garden", "south-court", "west-hill"]
    with pytest.raises(EstateRequired, match="4 estates"):
        portfolio.resolve(None)
    with pytest.raises(UnknownEstate):
        portfolio.resolve("nowhere")
    assert portfolio.resolve("west-hill") == "west-hill"


def test_a_deployment_file_with_a_glob_that_matches_nothing_is_refused_at_its_line(tmp_path: Path) -> None:
    three_estates(tmp_path / "estates")
    deployment = tmp_path / "deployment.yaml"
    deployment.write_text("kind: deployment\norganisation: Bay\nestates:\n  - estates/*.yaml\n"
                          "  - estate/*.yaml\n  - missing.yaml\n", encoding="utf-8")
    with pytest.raises(SiteFileError) as caught:
        load_portfolio(deployment)
    lines = [str(issue) for issue in caught.value.issues]
    assert lines == [
        f"{deployment}:5: estates[1]: 'estate/*.yaml' matches no site file (looked in {tmp_path})",
        f"{deployment}:6: estates[2]: no site file '{tmp_path / 'missing.yaml'}'"]


def test_check_site_reports_an_estate_id_used_twice_and_a_topic_claimed_twice_with_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = three_estates(tmp_path / "estates")
    # A copy of north-garden under another name (read last): its id is north-garden's.
    (folder / "west-copy.yaml").write_text(estate_yaml("north-garden", port=5150), encoding="utf-8")
    # south-court's devices publish under east-park's topic prefix: one topic, two estates.
    (folder / "south-court.yaml").write_text(estate_yaml("south-court", topic="east-park", port=5101),
                                             encoding="utf-8")
    assert main(["check-site", str(folder)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [  # in file order, each at the later file
        f"{folder / 'south-court.yaml'}:25: mqtt[0].topic: topic 'east-park/zigbee/{{device}}' can carry the "
        "same messages as 'east-park/zigbee/{device}' of estate 'east-park' "
        f"({folder / 'east-park.yaml'}:25): one topic belongs to one estate (give each estate's devices "
        "their own topic prefix)",
        f"{folder / 'west-copy.yaml'}:2: site.id: estate id 'north-garden' is already the estate of "
        f"{folder / 'north-garden.yaml'}:2: one id per estate",
    ]


def test_two_estates_may_not_share_a_modbus_endpoint_an_edge_id_or_an_edge_login(tmp_path: Path) -> None:
    folder = tmp_path / "estates"
    folder.mkdir()
    (folder / "a.yaml").write_text(estate_yaml("a", port=5300, edge="gw1"), encoding="utf-8")
    (folder / "b.yaml").write_text(estate_yaml("b", port=5300, edge="gw1"), encoding="utf-8")
    with pytest.raises(SiteFileError) as caught:
        load_portfolio(folder)
    issues = [(Path(i.file).name, i.field, i.message.split(":")[0]) for i in caught.value.issues]
    assert issues == [("b.yaml", "modbus[0].host", "127.0.0.1"),
                      ("b.yaml", "edges[0].id", "edge id 'gw1' is already an edge of estate 'a'"),
                      ("b.yaml", "edges[0].username", "username 'gw1-login' is already an edge login of "
                                                      "estate 'a'")]
    assert "is already a Modbus endpoint of estate 'a'" in caught.value.issues[0].message


def test_a_broken_estate_file_is_reported_with_its_own_problems(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    folder = three_estates(tmp_path / "estates")
    (folder / "east-park.yaml").write_text(estate_yaml("east-park").replace("kind: leak", "kind: lake"),
                                           encoding="utf-8")
    assert main(["check-site", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{folder / 'east-park.yaml'}:10: rooms[0].sensors[0].kind: ")
    assert len(err.splitlines()) == 1  # the other estates are fine


def test_check_site_of_a_good_folder_prints_every_estate(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = three_estates(tmp_path / "estates")
    assert main(["check-site", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"{folder}: OK: deployment estates / estates: 3 estates (east-park, north-garden, "
                      "south-court), 3 rooms")
    assert out[1].startswith(f"  {folder / 'east-park.yaml'}: site east-park (east-park / east-park), 1 room")


def test_registers_and_thresholds_of_a_deployment_have_a_heading_per_estate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = three_estates(tmp_path / "estates")
    assert main(["registers", "--site", str(folder)]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("## ")] == [
        "## estate east-park: east-park / east-park", "## estate north-garden: north-garden / north-garden",
        "## estate south-court: south-court / south-court"]
    assert out.count("### meter1: 127.0.0.1:") == 3
    assert main(["thresholds", "--site", str(folder)]) == 0
    assert capsys.readouterr().out.count("## estate ") == 3
    assert main(["registers", "--site", str(ROOT / "examples" / "site.yaml")]) == 0
    assert "## estate" not in capsys.readouterr().out  # one estate: the tables as before


def test_sensor_keys_and_topic_filters() -> None:
    assert sensor_key("north-garden", "pump1-current") == "north-garden/pump1-current"
    assert split_key("north-garden/pump1-current") == ("north-garden", "pump1-current")
    assert split_key("pump1-current") == ("", "pump1-current")
    assert filters_overlap("a/zigbee/+", "a/zigbee/x")
    assert filters_overlap("a/#", "a")
    assert filters_overlap("+/zigbee/+", "b/+/c")
    assert not filters_overlap("a/zigbee/+", "b/zigbee/+")
    assert not filters_overlap("a/+", "a/b/c")


def test_a_portfolio_of_sites_refuses_an_estate_twice() -> None:
    site = load_portfolio(ROOT / "examples" / "site.yaml").first
    with pytest.raises(ValueError, match="given twice"):
        Portfolio.of(site, site)
    both = Portfolio.of(site, load_portfolio(ROOT / "examples" / "minimal.yaml").first)
    assert both.without("minimal").only == "harbour-view"

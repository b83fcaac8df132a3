"""Any text given as a site file gives a site or located issues, never another exception."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpwatch.sitefile import SiteFileError, parse_site

EXAMPLE = (Path(__file__).parents[2] / "examples" / "site.yaml").read_text(encoding="utf-8")

yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=30)


def outcome(text: str) -> None:
    try:
        parse_site(text, "fuzz.yaml")
    except SiteFileError as err:
        assert err.issues  # noqa: PT017 (every outcome is checked, not one expected error)
        for issue in err.issues:
            assert issue.file == "fuzz.yaml"
            assert issue.message


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    outcome(text)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=yaml_values)
def test_arbitrary_yaml_documents(doc: object) -> None:
    outcome(yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(cut=st.integers(0, len(EXAMPLE)), junk=st.text(max_size=20))
def test_the_example_with_damage_spliced_in(cut: int, junk: str) -> None:
    outcome(EXAMPLE[:cut] + junk + EXAMPLE[cut:])

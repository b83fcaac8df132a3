"""Where readings come from: one module per protocol, each giving the collector its `Source`s.

A new protocol is a new module here with a `sources_from_site(context)` builder, one line in
`BUILDERS` below, and its entry in the site model (`pumpwatch/site.py`).
"""

from __future__ import annotations

from collector.sources import edge, modbus, mqtt
from collector.sources.base import Source, SourceBuilder, SourceContext

BUILDERS: tuple[SourceBuilder, ...] = (modbus.sources_from_site, mqtt.sources_from_site,
                                       edge.sources_from_site)


def build_sources(context: SourceContext) -> list[Source]:
    """Every source the site and settings call for, in `BUILDERS` order."""
    return [source for build in BUILDERS for source in build(context)]

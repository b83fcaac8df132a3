"""Where readings come from: one module per protocol, each giving the collector its `Source`s.

A new protocol is a new module here with a `sources_from_site(context)` builder, one line in
`ESTATE_BUILDERS` (a source per estate, such as Modbus pollers: a reload of one estate restarts its
own) or `SHARED_BUILDERS` (one source for every estate of the collector, such as one MQTT client;
a reload hands it the estates' new topic maps), and its entry in the site model (`pumpwatch/site.py`).
"""

from __future__ import annotations

from collector.sources import edge, modbus, mqtt
from collector.sources.base import Source, SourceBuilder, SourceContext

ESTATE_BUILDERS: tuple[SourceBuilder, ...] = (modbus.sources_from_site,)
SHARED_BUILDERS: tuple[SourceBuilder, ...] = (mqtt.sources_from_site, edge.sources_from_site)
BUILDERS = ESTATE_BUILDERS + SHARED_BUILDERS


def build_sources(context: SourceContext) -> list[Source]:
    """Every source the site and settings call for, in `BUILDERS` order."""
    return [source for build in BUILDERS for source in build(context)]

"""Which series store a process writes and reads: InfluxDB when a URL is set, else the embedded one."""

from __future__ import annotations

from collector.stores.embedded import EmbeddedStore
from collector.stores.influx import InfluxStore
from pumpwatch.catalog import SensorCatalog
from pumpwatch.series import SeriesStore
from pumpwatch.settings import Settings


def make_store(settings: Settings, catalog: SensorCatalog) -> SeriesStore:
    """InfluxDB when a URL is set, else the embedded store in the state directory."""
    influx = settings.influx
    if influx.url:
        return InfluxStore(
            influx.url, influx.database, catalog,
            retention_policy=influx.retention_policy,
            username=influx.username,
            password=influx.password.get_secret_value() if influx.password else None,
            token=influx.token.get_secret_value() if influx.token else None,
            create_database=influx.create_database,
            timeout=influx.timeout,
            ca_file=str(influx.ca_file) if influx.ca_file is not None else None,
        )
    return EmbeddedStore(settings.collector.state_dir / "series.db", catalog)

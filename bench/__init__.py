"""Benchmarks of the collector: `python -m bench.ingest`, `python -m bench.modbus_poll`."""

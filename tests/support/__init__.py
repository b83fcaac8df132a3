"""Helpers shared by the tests and the benchmarks (bench/); no tests in here.

- `services`: real Mosquitto, InfluxDB and PostgreSQL servers on free loopback ports.
- `processes`: a `pumpwatch` role as its own OS process (start, SIGKILL, stop, its URL), the demo.
- `smtp`: a real SMTP server on a free loopback port that records what arrives.
- `mqtt`: a counting QoS 1 publisher, a persistent session made ahead of its client, one-shot publish.
- `influx`: InfluxQL queries and the stored counts of a sensor.
- `waiting`: `eventually`, polling an async check against a deadline.
- `sites`: small site files built as data (timezones, duty groups, plans).
- `state`: a pytest plugin (registered in tests/conftest.py): the maintenance state's fixtures, every
  database test on SQLite and on PostgreSQL, and the people of the workflow tests.
- `leaks`: a pytest plugin (registered in tests/conftest.py): an async test that leaves asyncio tasks
  running fails, naming them.
"""

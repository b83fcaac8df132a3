"""Where readings are kept: InfluxDB or the embedded store."""

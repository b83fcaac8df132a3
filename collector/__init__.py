"""Collector: Modbus polling and MQTT intake into the series store, with alarm rules."""

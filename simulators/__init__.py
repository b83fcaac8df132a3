"""Pump-room simulators: a physical model served over Modbus TCP and MQTT, with fault scenarios."""

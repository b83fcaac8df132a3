"""Where readings come from: Modbus and MQTT."""

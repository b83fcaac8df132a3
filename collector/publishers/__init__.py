"""Alarm events and live readings to the broker for other processes."""

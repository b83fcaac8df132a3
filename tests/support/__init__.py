"""Helpers the test packages share: real servers on loopback, fixtures."""

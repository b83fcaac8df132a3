"""HTTP API and web UI."""

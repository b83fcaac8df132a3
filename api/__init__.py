"""HTTP API and web UI over the maintenance state."""

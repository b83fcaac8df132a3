"""HTTP API and web UI."""

# Every table registers on the shared metadata when the package loads (migrations compare against it).
from api import approval_models as approval_models

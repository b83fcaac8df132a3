"""Tables of shift handovers (交接班): what the outgoing shift hands over and who accepted it."""

from __future__ import annotations

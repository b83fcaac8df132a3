"""Tables of approved exceptions: a switch allowed out of AUTO, by whom, why and until when."""

from __future__ import annotations

"""Tokens verified in the last few seconds, so a busy dashboard does not look its token up on every request.

An entry holds what the database said about a token (its owner, kind, CSRF hash, expiry) and is used
for at most `ttl` seconds, and never past the token's own expiry. Every revocation, password change,
deactivation and role change made through this process empties the cache at once; one made through
another API process (a second replica) reaches this one within `ttl`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from maintenance.models import User

TOKEN_CACHE_SECONDS = 5.0
MAX_TOKENS = 10_000  # entries; beyond that the oldest are dropped (each entry is a few hundred bytes)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A live token as the database described it at `verified_at` (epoch seconds)."""

    user: User
    kind: str
    csrf_hash: str | None
    expires_at: datetime
    verified_at: float


class TokenCache:
    """Verified tokens by hash; safe to use from the request threads."""

    def __init__(self, ttl: float = TOKEN_CACHE_SECONDS, max_tokens: int = MAX_TOKENS) -> None:
        self.ttl = ttl
        self.max_tokens = max_tokens
        self._entries: dict[str, VerifiedToken] = {}
        self._lock = threading.Lock()
        self._generation = 0  # moves on every clear, so a lookup that raced a revocation is not stored

    @property
    def generation(self) -> int:
        """Take this before reading the database, and hand it to `put`."""
        return self._generation

    def get(self, digest: str, now: float, now_utc: datetime) -> VerifiedToken | None:
        """The entry for a token hash while it is fresh and the token unexpired, else None."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if not 0 <= now - entry.verified_at < self.ttl or entry.expires_at <= now_utc:
            with self._lock:
                self._entries.pop(digest, None)
            return None
        return entry

    def put(self, digest: str, entry: VerifiedToken, generation: int) -> None:
        """Keep an entry, unless the cache was cleared since `generation` was taken."""
        if self.ttl <= 0:
            return
        with self._lock:
            if generation != self._generation:
                return
            if len(self._entries) >= self.max_tokens:
                for old in list(self._entries)[: len(self._entries) // 2]:
                    del self._entries[old]
            self._entries[digest] = entry

    def clear(self) -> None:
        """Forget every entry (after any change to tokens or users)."""
        with self._lock:
            self._generation += 1
            self._entries.clear()

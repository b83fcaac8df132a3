"""`/api/estates/{estate}/...`: the estate-qualified form of every route that takes `?estate=`.

`/api/estates/twin-towers/rooms/dom/latest` is `/api/rooms/dom/latest?estate=twin-towers`, served by the
same handler with the same scope check (an estate outside the caller's scope is a 404). Only routes that
take `estate` have the form; any other path under an estate is a 404, so a record route never silently
ignores the estate its path names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

PREFIX = "/api/estates/"
_QUALIFIED = re.compile(r"^/api/estates/([^/]+)/(.+)$")


def estate_routes(openapi: dict[str, Any]) -> list[re.Pattern[str]]:
    """The path patterns of the routes that take an `estate` query parameter (from the OpenAPI paths)."""
    found = []
    for path, operations in openapi.get("paths", {}).items():
        if any(p.get("in") == "query" and p.get("name") == "estate"
               for op in operations.values() if isinstance(op, dict) for p in op.get("parameters", [])):
            parts = re.split(r"\{[^}]+\}", path)  # the path's {parameters} match one segment
            found.append(re.compile("^" + "[^/]+".join(re.escape(part) for part in parts) + "$"))
    return found


class EstatePaths:
    """Rewrites an estate-qualified path to its route with `?estate=` (the path's estate wins).

    `openapi` gives the application's schema; the routes are read from it at the first qualified request,
    when every router is included.
    """

    def __init__(self, app: ASGIApp, openapi: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self._openapi = openapi
        self._patterns: list[re.Pattern[str]] | None = None

    @property
    def patterns(self) -> list[re.Pattern[str]]:
        """The routes that have an estate-qualified form."""
        if self._patterns is None:
            self._patterns = estate_routes(self._openapi())
        return self._patterns

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one connection scope."""
        path: str = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(PREFIX) and (found := _QUALIFIED.match(path)):
            estate, rest = unquote(found.group(1)), "/api/" + found.group(2)
            if any(p.match(rest) for p in self.patterns):
                query = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                                                      keep_blank_values=True) if k != "estate"]
                query.append(("estate", estate))
                scope = dict(scope, path=rest, raw_path=quote(rest).encode(),
                             query_string=urlencode(query).encode("latin-1"))
        await self.app(scope, receive, send)

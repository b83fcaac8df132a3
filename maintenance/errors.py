"""Errors the state services raise; routes map each to one HTTP status."""

from __future__ import annotations

from datetime import datetime

from pumpwatch.errors import PumpWatchError


class ServiceError(PumpWatchError):
    """Base of the state services' errors."""


class NotFound(ServiceError):
    """The entity does not exist (HTTP 404)."""

    def __init__(self, entity: str, entity_id: object) -> None:
        super().__init__(f"{entity} {entity_id} not found")
        self.entity = entity
        self.entity_id = entity_id


class Forbidden(ServiceError):
    """The user may not do this (HTTP 403)."""


class InvalidInput(ServiceError):
    """The request is well-formed but its content is not acceptable (HTTP 422)."""


class Conflict(ServiceError):
    """The change collides with existing data, e.g. a taken username (HTTP 409)."""


class IllegalTransition(ServiceError):
    """The task's current state does not allow the attempted action (HTTP 409)."""

    def __init__(self, current: str, attempted: str) -> None:
        super().__init__(f"cannot {attempted} a task that is {current}")
        self.current = current
        self.attempted = attempted


class InvalidCredentials(ServiceError):
    """Unknown user, wrong password or inactive account; deliberately not told apart (HTTP 401)."""


class SignInThrottled(ServiceError):
    """Too many failed sign-ins of this name from this address; try again at `until` (HTTP 429)."""

    def __init__(self, until: datetime) -> None:
        super().__init__("too many failed sign-ins from this address; wait and try again")
        self.until = until

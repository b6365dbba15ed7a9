"""The citybrain exception hierarchy.

CityBrainError
├── ValidationError      bad input: names the field (HTTP 400)
├── NotFound             unknown entity, place, sensor, document (404)
├── AlreadyExists        create of something that exists (409)
├── Conflict             a state transition that is not allowed now (409)
├── Forbidden            the actor may not do this (403)
├── TooManyRequests      a rate or attempt limit is used up; Retry-After says when to come back (429)
└── Unavailable          a dependency (database, bus) is down (503)
"""

from __future__ import annotations

import math
from typing import Any


class CityBrainError(Exception):
    """Base of every error citybrain raises on purpose."""

    status = 500
    code = "InternalError"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra

    def to_problem(self) -> dict[str, Any]:
        """Return RFC 7807 problem details for this error."""
        body: dict[str, Any] = {
            "type": f"https://citybrain.dev/errors/{self.code}",
            "title": self.code,
            "status": self.status,
            "detail": self.detail,
        }
        if self.field is not None:
            body["field"] = self.field
        body.update(self.extra)
        return body

    def http_headers(self) -> dict[str, str]:
        """Return the HTTP headers an answer to this error carries (Retry-After for a 429 or 503)."""
        retry = self.extra.get("retry_after")
        return {"Retry-After": str(max(1, math.ceil(float(retry))))} if retry is not None else {}


class ValidationError(CityBrainError):
    """Input that does not satisfy a schema; `field` names the offending field."""

    status = 400
    code = "ValidationError"


class NotFound(CityBrainError):
    """A referenced thing does not exist."""

    status = 404
    code = "NotFound"


class AlreadyExists(CityBrainError):
    """Something with this identity already exists."""

    status = 409
    code = "AlreadyExists"


class Conflict(CityBrainError):
    """The request conflicts with the current state."""

    status = 409
    code = "Conflict"


class Forbidden(CityBrainError):
    """The actor is not allowed to do this."""

    status = 403
    code = "Forbidden"


class TooManyRequests(CityBrainError):
    """A rate or attempt limit is used up (HTTP 429); pass `retry_after=<seconds>`."""

    status = 429
    code = "TooManyRequests"


class Unavailable(CityBrainError):
    """A dependency is unavailable; try again later."""

    status = 503
    code = "Unavailable"

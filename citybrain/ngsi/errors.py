"""NGSI-LD ProblemDetails (ETSI GS CIM 009 §5.5.2) and their HTTP status codes."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response

from citybrain.errors import CityBrainError

ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
PROBLEM = "application/json"

# citybrain error codes → NGSI-LD problem types
_FROM_CITYBRAIN = {
    "ValidationError": ("BadRequestData", 400),
    "NotFound": ("ResourceNotFound", 404),
    "AlreadyExists": ("AlreadyExists", 409),
    "Conflict": ("Conflict", 409),
    "Forbidden": ("Forbidden", 403),
    "Unavailable": ("InternalError", 503),
}


class NgsiError(Exception):
    """An NGSI-LD error with its problem type and status code."""

    kind = "InternalError"
    status = 500

    def __init__(self, detail: str, title: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.title = title

    def body(self) -> dict[str, Any]:
        """Return the ProblemDetails object."""
        return {"type": ERRORS + self.kind, "title": self.title or self.kind, "status": self.status,
                "detail": self.detail}


class BadRequestData(NgsiError):
    """The request body or a parameter is syntactically fine but its content is wrong."""

    kind, status = "BadRequestData", 400


class InvalidRequest(NgsiError):
    """The request is not well formed (invalid JSON, wrong content type)."""

    kind, status = "InvalidRequest", 400


class ResourceNotFound(NgsiError):
    """The entity, attribute, type or subscription does not exist."""

    kind, status = "ResourceNotFound", 404


class AlreadyExists(NgsiError):
    """An entity or subscription with that id exists."""

    kind, status = "AlreadyExists", 409


class OperationNotSupported(NgsiError):
    """citybrain does not implement this operation or option."""

    kind, status = "OperationNotSupported", 501


class LdContextNotAvailable(NgsiError):
    """A JSON-LD @context could not be resolved (not in the local cache)."""

    kind, status = "LdContextNotAvailable", 503


class TooComplexQuery(NgsiError):
    """The query is too expensive to evaluate."""

    kind, status = "TooComplexQuery", 403


class TooManyResults(NgsiError):
    """The query would return too many results."""

    kind, status = "TooManyResults", 403


class PayloadTooLarge(NgsiError):
    """The request body is over the configured limit."""

    kind, status = "PayloadTooLarge", 413


class UnsupportedMediaType(NgsiError):
    """The Content-Type is not application/json or application/ld+json."""

    kind, status = "UnsupportedMediaType", 415


class NotAcceptable(NgsiError):
    """The Accept header asks for a representation citybrain does not produce."""

    kind, status = "NotAcceptable", 406


def problem_response(err: NgsiError) -> Response:
    """Return the HTTP response of an NGSI-LD error."""
    return Response(orjson.dumps(err.body()), status_code=err.status, media_type=PROBLEM)


def from_citybrain(exc: CityBrainError) -> NgsiError:
    """Translate a citybrain error (from a command or the store) into its NGSI-LD problem type."""
    kind, status = _FROM_CITYBRAIN.get(exc.code, ("InternalError", exc.status))
    err = NgsiError(exc.detail)
    err.kind, err.status = kind, status
    return err

"""NGSI-LD URNs: urn:ngsi-ld:<Type>:<id>."""

from __future__ import annotations

import re

from citybrain.errors import ValidationError

# RFC 8141 NID and NSS, loosely: any URI with a scheme is a valid NGSI-LD id; we check shape only.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+$")
_SAFE = re.compile(r"[^A-Za-z0-9._~:@!$&'()*+,;=/-]")


def make_urn(entity_type: str, ident: str) -> str:
    """Return urn:ngsi-ld:<entity_type>:<ident>, escaping characters a URN may not hold."""
    return f"urn:ngsi-ld:{entity_type}:{_SAFE.sub('-', ident)}"


def is_urn(value: object) -> bool:
    """Tell whether `value` is an absolute URI usable as an entity id."""
    return isinstance(value, str) and bool(_URI.match(value))


def check_id(value: object, field: str = "id") -> str:
    """Return `value` if it is a valid entity id, else raise ValidationError naming `field`."""
    if not is_urn(value):
        raise ValidationError(f"{field}: {value!r} is not a URI such as urn:ngsi-ld:Type:id", field=field)
    assert isinstance(value, str)
    return value


def entity_type_of(urn: str) -> str | None:
    """Return the <Type> part of a urn:ngsi-ld:<Type>:<id>, or None for other URIs."""
    parts = urn.split(":", 3)
    if len(parts) == 4 and parts[0] == "urn" and parts[1] == "ngsi-ld":
        return parts[2]
    return None

"""Access tokens: compact JWS (RFC 7519 JWT) signed with HMAC-SHA256, verified strictly (alg fixed to HS256)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import orjson

from citybrain.errors import CityBrainError

HEADER = {"alg": "HS256", "typ": "JWT"}


class Unauthorized(CityBrainError):
    """No valid credentials were presented (HTTP 401)."""

    status = 401
    code = "Unauthorized"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claims: dict[str, Any], secret: str) -> str:
    """Return a signed HS256 JWT of `claims`."""
    signing = _b64(orjson.dumps(HEADER)) + "." + _b64(orjson.dumps(claims))
    mac = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + _b64(mac)


def issue(sub: str, secret: str, ttl: int, issuer: str, now: float | None = None, **extra: Any) -> str:
    """Return a token for identity `sub` valid for `ttl` seconds."""
    iat = int(time.time() if now is None else now)
    return encode({"iss": issuer, "sub": sub, "iat": iat, "exp": iat + ttl, **extra}, secret)


def decode(token: str, secret: str, issuer: str | None = None, now: float | None = None) -> dict[str, Any]:
    """Verify a token's signature, algorithm, expiry and issuer; return its claims or raise Unauthorized."""
    try:
        head_s, body_s, mac_s = token.split(".")
        header, claims, mac = orjson.loads(_unb64(head_s)), orjson.loads(_unb64(body_s)), _unb64(mac_s)
    except (ValueError, orjson.JSONDecodeError):
        raise Unauthorized("malformed token") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        raise Unauthorized("token algorithm must be HS256")
    want = hmac.new(secret.encode(), f"{head_s}.{body_s}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(want, mac):
        raise Unauthorized("bad token signature")
    t = time.time() if now is None else now
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or t >= exp:
        raise Unauthorized("token expired")
    if issuer is not None and claims.get("iss") != issuer:
        raise Unauthorized("token issued by another node")
    if not isinstance(claims.get("sub"), str):
        raise Unauthorized("token has no subject")
    return claims

"""The auth service: identify a credential (API key or token), issue tokens, bootstrap the first admin."""

from __future__ import annotations

import logging
import math
import sys
from typing import TYPE_CHECKING, Any

from citybrain.errors import AlreadyExists, TooManyRequests
from citybrain.identity import Identity
from citybrain.nodekeys import fingerprint, node_file, pin_node_secret, write_secret
from citybrain.trust.identity import Directory, register
from citybrain.trust.throttle import LoginThrottle
from citybrain.trust.tokens import Unauthorized, decode, issue

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

log = logging.getLogger("citybrain.trust")
MAX_PASSWORD = 1024  # longer passwords are wrong without hashing them
MAX_CHECKING = 32  # password checks waiting for the hashing pool before further logins get 429


class AuthService:
    """Turns credentials into identities for the middleware and issues access tokens."""

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self.directory = Directory(rt)
        self._secret = rt.node_secret
        self.throttle = LoginThrottle(rt.settings.login_burst, rt.settings.login_refill_s)
        self._checking = 0

    def __repr__(self) -> str:
        return f"AuthService(node={self.rt.node_id!r})"

    async def identify(self, credential: str) -> Identity:
        """Return the enabled identity a token or API key belongs to; raise Unauthorized otherwise."""
        if credential.startswith("cb_"):
            ident = await self.directory.by_key(credential)
            if ident is None:
                raise Unauthorized("unknown or revoked API key")
            return ident
        claims = decode(credential, self._secret, issuer=self.rt.node_id)
        ident = await self.directory.get(claims["sub"])
        if ident is None or ident.disabled:
            raise Unauthorized("the token's identity no longer exists or is disabled")
        return ident

    def token(self, ident: Identity) -> dict[str, Any]:
        """Return an OAuth2-style token response for an identity."""
        ttl = self.rt.settings.token_ttl
        tok = issue(ident.name, self._secret, ttl, self.rt.node_id, role=ident.role, department=ident.department,
                    place=ident.place)
        return {"access_token": tok, "token_type": "Bearer", "expires_in": ttl, "actor": ident.actor}

    async def login(self, body: dict[str, Any], client: str | None = None) -> dict[str, Any]:
        """Exchange {api_key} or {username, password} for a token; raise Unauthorized if they are wrong.

        Password logins are throttled per account and per client address (`LoginThrottle`): over the limit,
        TooManyRequests (429, Retry-After) before any hashing."""
        ident: Identity | None = None
        if isinstance(body.get("api_key"), str):
            ident = await self.directory.by_key(body["api_key"])
        elif isinstance(body.get("username"), str) and isinstance(body.get("password"), str):
            ident = await self._password_login(body["username"], body["password"], client)
        else:
            raise Unauthorized("send {api_key} or {username, password}")
        if ident is None:
            raise Unauthorized("wrong credentials")
        return self.token(ident)

    async def _password_login(self, name: str, password: str, client: str | None) -> Identity | None:
        keys = [f"user:{name[:64].lower()}", f"addr:{client or '?'}"]
        self._throttle(self.throttle.acquire(keys), "too many wrong passwords for this account or address")
        if self._checking >= MAX_CHECKING:
            self.throttle.release(keys)
            self._throttle(1.0, "too many logins in progress")
        if len(password) > MAX_PASSWORD:
            return None
        self._checking += 1
        try:
            ident = await self.directory.by_password(name, password)
        finally:
            self._checking -= 1
        if ident is not None:
            self.throttle.release(keys)
        return ident

    @staticmethod
    def _throttle(wait: float, why: str) -> None:
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise TooManyRequests(f"{why}: retry in {retry} s", retry_after=retry)

    async def bootstrap(self) -> str | None:
        """With auth on and no identities yet, create `admin` with an API key written to <store>.admin-key."""
        if self.rt.settings.auth != "on" or await self.directory.count() > 0:
            return None
        ctx = self.rt.context("system:bootstrap")
        try:
            await self.rt.execute("user.add", {"name": "admin", "role": "admin", "kind": "user"}, ctx)
        except AlreadyExists:  # another process of the node bootstrapped at the same moment: its key stands
            return None
        key: str = (await self.rt.execute("user.key", {"name": "admin", "label": "bootstrap"}, ctx))["key"]
        path = node_file(self.rt.settings, ".admin-key")
        where = ""
        if path is not None:
            try:
                write_secret(path, key)
                where = f" (also written to {path}, mode 0600)"
            except FileExistsError:
                path.write_text(key + "\n")
                where = f" (also written to {path})"
        # printed once on the console, never through logging
        print(f"citybrain: created the first administrator 'admin'. API key: {key}{where}", file=sys.stderr)
        return key


async def setup(rt: CityBrain) -> None:
    """Register the identity commands, start the auth service and bootstrap the first admin."""
    register(rt)
    service = AuthService(rt)
    await pin_node_secret(rt.store, "jwt_secret", fingerprint(service._secret))
    rt.ports.auth = service
    rt.ports.identities = service.directory
    await service.bootstrap()

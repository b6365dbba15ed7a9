"""The auth service: identify a credential (API key or token), issue tokens, bootstrap the first admin."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from citybrain.errors import AlreadyExists
from citybrain.identity import Identity
from citybrain.nodekeys import fingerprint, node_file, pin_node_secret, write_secret
from citybrain.trust.identity import Directory, register
from citybrain.trust.tokens import Unauthorized, decode, issue

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

log = logging.getLogger("citybrain.trust")


class AuthService:
    """Turns credentials into identities for the middleware and issues access tokens."""

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self.directory = Directory(rt)
        self._secret = rt.node_secret

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

    async def login(self, body: dict[str, Any]) -> dict[str, Any]:
        """Exchange {api_key} or {username, password} for a token; raise Unauthorized if they are wrong."""
        ident: Identity | None = None
        if isinstance(body.get("api_key"), str):
            ident = await self.directory.by_key(body["api_key"])
        elif isinstance(body.get("username"), str) and isinstance(body.get("password"), str):
            ident = await self.directory.by_password(body["username"], body["password"])
        else:
            raise Unauthorized("send {api_key} or {username, password}")
        if ident is None:
            raise Unauthorized("wrong credentials")
        return self.token(ident)

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

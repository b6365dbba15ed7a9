"""Identities (users and service accounts), their roles and scopes, API keys (stored hashed) and passwords.

Identities live in the `identities` document collection, API keys in `api_keys` (SHA-256 of the
secret part only). Every change is a command (`user.add`, `user.key`, `user.revoke_key`,
`user.disable`), so it is recorded in the ledger; secrets never enter an event.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.errors import AlreadyExists, NotFound, ValidationError
from citybrain.identity import Identity
from citybrain.ports import Ports
from citybrain.store.base import PutDoc

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

ROLES: tuple[str, ...] = (
    "admin", "city_operator", "command_centre", "supervisor", "department_handler", "community_operator",
    "grid_worker", "data_officer", "auditor", "external_user", "device", "ops",
)
IDENTITIES, API_KEYS = "identities", "api_keys"
# identity document member: access tokens issued (iat, whole seconds) no later than this epoch time are void
TOKENS_AFTER = "tokens_after"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def role_of(actor: str) -> str:
    """Return the role part of an actor string ('system' for internal actors)."""
    return actor.split(":", 1)[0] if ":" in actor else actor


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Return an scrypt password hash `scrypt$<salt hex>$<hash hex>`."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Return True iff `password` matches an scrypt hash made by hash_password."""
    try:
        kind, salt, _ = stored.split("$")
    except ValueError:
        return False
    return kind == "scrypt" and hmac.compare_digest(hash_password(password, bytes.fromhex(salt)), stored)


# scrypt (~50 ms of CPU, the GIL released) never runs on the event loop: a small pool of its own, so a flood
# of logins neither stalls other requests nor takes the default executor's threads
HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="password-hash")
# checked for unknown users and users without a password: the same time, so no account enumeration by timing
_DUMMY = ("scrypt$00000000000000000000000000000000$"
          "a23418c8b146c629d53ffbf97c9836cae13df0d6f942dc526fa33508b019fc44")


async def hash_password_async(password: str) -> str:
    """hash_password on the hashing pool."""
    return await asyncio.get_running_loop().run_in_executor(HASHING, hash_password, password)


async def check_password_async(password: str, stored: str) -> bool:
    """check_password on the hashing pool."""
    return await asyncio.get_running_loop().run_in_executor(HASHING, check_password, password, stored)


def split_key(key: str) -> tuple[str, str] | None:
    """Split an API key `cb_<id>.<secret>` into (id, secret), or None if malformed."""
    if not key.startswith("cb_") or "." not in key:
        return None
    key_id, secret = key[3:].split(".", 1)
    return (key_id, secret) if key_id and secret else None


def key_hash(secret: str) -> str:
    """Return the stored hash of an API key's secret part (high-entropy, so one SHA-256 suffices)."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Directory:
    """Looks identities and API keys up in the store, with a short cache so revocation takes effect fast."""

    def __init__(self, rt: CityBrain, ttl: float = 2.0) -> None:
        self.rt, self.ttl = rt, ttl
        self._cache: dict[str, tuple[float, Identity | None, str, float]] = {}

    async def get(self, name: str) -> Identity | None:
        """Return an identity (disabled ones too), or None."""
        return (await self._load(name))[0]

    async def _load(self, name: str) -> tuple[Identity | None, str]:
        hit = await self._entry(name)
        return hit[1], hit[2]

    async def _entry(self, name: str) -> tuple[float, Identity | None, str, float]:
        """Return (loaded at, identity, password hash, tokens_after) from the cache (≤ ttl old) or the store."""
        hit = self._cache.get(name)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit
        doc = await self.rt.store.get_doc(IDENTITIES, name)
        ident = None if doc is None else msgspec.convert(
            {k: v for k, v in doc.data.items() if k not in ("password", TOKENS_AFTER)}, Identity)
        pw = "" if doc is None else str(doc.data.get("password") or "")
        after = 0.0 if doc is None else float(doc.data.get(TOKENS_AFTER) or 0)
        entry = (time.monotonic(), ident, pw, after)
        self._cache[name] = entry
        return entry

    async def token_revoked(self, claims: dict[str, Any]) -> bool:
        """Tell whether an access token's claims were issued no later than its identity's tokens were revoked
        (a key revoked, `user.revoke_tokens`): read from the store at most `ttl` seconds ago."""
        after = (await self._entry(str(claims.get("sub"))))[3]
        iat = claims.get("iat")
        return bool(after) and (not isinstance(iat, int | float) or iat <= int(after))

    def forget(self, name: str | None = None) -> None:
        """Drop cached entries (all, or one identity's)."""
        if name is None:
            self._cache.clear()
        else:
            self._cache.pop(name, None)

    async def by_key(self, key: str) -> Identity | None:
        """Return the enabled identity owning API key `key`, or None."""
        parts = split_key(key)
        if parts is None:
            return None
        doc = await self.rt.store.get_doc(API_KEYS, parts[0])
        if doc is None or doc.data.get("revoked") or not hmac.compare_digest(doc.data["hash"], key_hash(parts[1])):
            return None
        ident = await self.get(doc.data["identity"])
        return None if ident is None or ident.disabled else ident

    async def by_password(self, name: str, password: str) -> Identity | None:
        """Return the enabled identity if `password` is its password, or None."""
        ident, stored = await self._load(name)
        ok = await check_password_async(password, stored or _DUMMY)
        if not ok or ident is None or ident.disabled or not stored:
            return None
        return ident

    async def count(self) -> int:
        """Return how many identities exist (up to 1000)."""
        return len(await self.rt.store.list_docs(IDENTITIES, limit=1000))


class AddUser(msgspec.Struct, kw_only=True):
    """Create a user or service account."""

    name: str
    role: str
    kind: Literal["user", "service"] = "user"
    department: str | None = None
    place: str | None = None
    password: str | None = None


class NewKey(msgspec.Struct, kw_only=True):
    """Issue an API key to an identity (the secret is returned once, only its hash is stored)."""

    name: str
    label: str = ""


class KeyRef(msgspec.Struct, kw_only=True):
    """Revoke one API key."""

    key_id: str


class UserRef(msgspec.Struct, kw_only=True):
    """Disable an identity (its keys and tokens stop working)."""

    name: str


async def add_user(rt: CityBrain, cmd: AddUser, ctx: Context) -> Outcome:
    """Validate and store a new identity."""
    if not NAME.match(cmd.name):
        raise ValidationError(f"name: {cmd.name!r} is not a valid identity name", field="name")
    if cmd.role not in ROLES:
        raise ValidationError(f"role: {cmd.role!r} is not one of {', '.join(ROLES)}", field="role")
    places = rt.ports.find(Ports.places)
    if cmd.place is not None and places is not None and cmd.place not in places:
        raise ValidationError(f"place: unknown place {cmd.place}", field="place")
    if await rt.store.get_doc(IDENTITIES, cmd.name) is not None:
        raise AlreadyExists(f"identity {cmd.name} exists", field="name")
    data = {"name": cmd.name, "role": cmd.role, "kind": cmd.kind, "department": cmd.department,
            "place": cmd.place, "disabled": False,
            "password": await hash_password_async(cmd.password) if cmd.password else ""}
    public = {k: v for k, v in data.items() if k != "password"}
    return Outcome(ops=[PutDoc(IDENTITIES, cmd.name, data, expect_version=0)], result=public, event=public,
                   after=_forget(rt, cmd.name))


def _forget(rt: CityBrain, name: str) -> object:
    async def after() -> None:
        directory = rt.ports.find(Ports.identities)
        if directory is not None:
            directory.forget(name)

    return after


async def new_key(rt: CityBrain, cmd: NewKey, ctx: Context) -> Outcome:
    """Create an API key; the result holds the key, the event only its id."""
    if await rt.store.get_doc(IDENTITIES, cmd.name) is None:
        raise NotFound(f"unknown identity {cmd.name}", field="name")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    data = {"identity": cmd.name, "hash": key_hash(secret), "label": cmd.label, "created": rt.now(), "revoked": False}
    return Outcome(ops=[PutDoc(API_KEYS, key_id, data, expect_version=0)],
                   result={"name": cmd.name, "key_id": key_id, "key": f"cb_{key_id}.{secret}"},
                   event={"name": cmd.name, "key_id": key_id, "label": cmd.label})


async def revoke_key(rt: CityBrain, cmd: KeyRef, ctx: Context) -> Outcome:
    """Mark an API key revoked, and void the access tokens its identity holds (a token does not record the
    key it was obtained with, so every token of the identity issued until now ends; its other keys and
    password still work and give new tokens)."""
    doc = await rt.store.get_doc(API_KEYS, cmd.key_id)
    if doc is None:
        raise NotFound(f"unknown API key {cmd.key_id}", field="key_id")
    name = doc.data["identity"]
    ops: list[Any] = [PutDoc(API_KEYS, cmd.key_id, doc.data | {"revoked": True, "revoked_at": rt.now()})]
    ops += await _void_tokens(rt, name)
    return Outcome(ops=ops, event={"key_id": cmd.key_id, "name": name}, after=_forget(rt, name))


async def _void_tokens(rt: CityBrain, name: str) -> list[Any]:
    """Return the write ending every access token of `name` issued until now (wall-clock seconds, as iat)."""
    doc = await rt.store.get_doc(IDENTITIES, name)
    if doc is None:
        return []
    return [PutDoc(IDENTITIES, name, doc.data | {TOKENS_AFTER: time.time()}, expect_version=doc.version)]


async def revoke_tokens(rt: CityBrain, cmd: UserRef, ctx: Context) -> Outcome:
    """End every access token an identity holds now (its keys and password still work)."""
    if await rt.store.get_doc(IDENTITIES, cmd.name) is None:
        raise NotFound(f"unknown identity {cmd.name}", field="name")
    return Outcome(ops=await _void_tokens(rt, cmd.name), event={"name": cmd.name}, after=_forget(rt, cmd.name))


async def disable_user(rt: CityBrain, cmd: UserRef, ctx: Context) -> Outcome:
    """Disable an identity."""
    doc = await rt.store.get_doc(IDENTITIES, cmd.name)
    if doc is None:
        raise NotFound(f"unknown identity {cmd.name}", field="name")
    return Outcome(ops=[PutDoc(IDENTITIES, cmd.name, doc.data | {"disabled": True})], event={"name": cmd.name},
                   after=_forget(rt, cmd.name))


def register(rt: CityBrain) -> None:
    """Register the identity commands (admin only)."""
    admin = ("admin",)
    rt.commands.register("user.add", AddUser, add_user, "create a user or service account", admin)
    rt.commands.register("user.key", NewKey, new_key, "issue an API key (shown once)", admin)
    rt.commands.register("user.revoke_key", KeyRef, revoke_key, "revoke an API key", admin)
    rt.commands.register("user.disable", UserRef, disable_user, "disable an identity", admin)
    rt.commands.register("user.revoke_tokens", UserRef, revoke_tokens, "end every access token of an identity",
                         admin)

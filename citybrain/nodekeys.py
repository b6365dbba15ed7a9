"""A node's secrets: the files beside its store (ledger signing key, node secret, bootstrap admin key), their
fingerprints pinned in the store so every process of a node uses the same, and keys derived for one purpose.

The node secret (`jwt_secret`, or the generated `<store>.jwt-secret` file) signs access tokens; `subkey`
derives separate keys from it for other purposes (the pipeline's checkpoint MACs), so no feature holds the
secret itself. It never lives in the store: only its fingerprint does."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from citybrain.config import Settings

if TYPE_CHECKING:
    from citybrain.store.base import Store


def node_file(settings: Settings, suffix: str) -> Path | None:
    """Return `<store file><suffix>`, or var/<node_id><suffix> for a PostgreSQL store; None for :memory:."""
    store = settings.store
    if store.startswith(("postgresql://", "postgres://")):
        return Path("var") / f"{settings.node_id}{suffix}"
    if store.startswith("sqlite:///"):
        store = store[len("sqlite:///"):]
    if store in ("", ":memory:"):
        return None
    return Path(store + suffix)


def node_secret(settings: Settings) -> str:
    """Return the node secret: `settings.jwt_secret`, or the node's secret file (created on first use)."""
    import secrets

    if settings.jwt_secret:
        return settings.jwt_secret
    secret, _ = read_or_create(node_file(settings, ".jwt-secret"), lambda: secrets.token_urlsafe(32))
    return secret


def subkey(secret: str, purpose: str) -> bytes:
    """Derive the key for one purpose from the node secret (HMAC-SHA256, so keys of purposes are unrelated)."""
    import hashlib
    import hmac

    return hmac.new(secret.encode(), b"citybrain-subkey\0" + purpose.encode(), hashlib.sha256).digest()


def write_secret(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (0600) and write `text`; fail if it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # written in full under a private name, then linked into place (fails if it exists): a process of the
    # node starting at the same moment never reads a half-written (empty) secret
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_or_create(path: Path | None, make: Callable[[], str]) -> tuple[str, bool]:
    """Return the secret in `path`, creating it with `make()` first if missing; (secret, created)."""
    if path is None:
        return make(), True
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip(), False
    value = make()
    try:
        write_secret(path, value)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_text().strip(), False
    return value, True


NODE_KEYS = "node_keys"


def fingerprint(secret: str) -> str:
    """Return a public fingerprint of a secret (SHA-256, salted by purpose), safe to store and compare."""
    import hashlib

    return hashlib.sha256(b"citybrain-node-secret\0" + secret.encode()).hexdigest()[:32]


async def pin_node_secret(store: Store, name: str, public: str) -> None:
    """Record the node's `name` key (its public part or fingerprint) once; refuse a process that differs.

    Every process of a node must sign with the same ledger key and token secret: a second process started
    with another one (its own generated file, a typo in shared configuration) would fork the ledger or reject
    its peers' tokens, so it stops at start with a clear error instead."""
    from citybrain.errors import AlreadyExists, Conflict
    from citybrain.store.base import PutDoc

    try:
        await store.apply([PutDoc(NODE_KEYS, name, {"public": public}, expect_version=0)])
        return
    except (AlreadyExists, Conflict):
        pass
    doc = await store.get_doc(NODE_KEYS, name)
    if doc is not None and doc.data.get("public") != public:
        raise Conflict(
            f"this process's {name} differs from the one the node's other processes use (stored in "
            f"{NODE_KEYS}/{name}); give every process the same {SECRET_ENV[name]} (shared configuration)",
            field=name,
        )


SECRET_ENV = {"ledger_key": "CITYBRAIN_LEDGER_KEY", "jwt_secret": "CITYBRAIN_JWT_SECRET"}

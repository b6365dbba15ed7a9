"""Secret files of a node (ledger signing key, token secret, bootstrap admin key) kept next to its store."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from citybrain.config import Settings


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


def write_secret(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (0600) and write `text`; fail if it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


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

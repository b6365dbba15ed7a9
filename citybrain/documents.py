"""Typed, versioned documents (platform floor): a collection's documents as a msgspec Struct, with migrations.

A feature declares each collection it keeps once:

    DIRECTIVES = DocumentType("fed_directives", Directive, version=2, migrations={1: add_priority})

and reads and writes through it: `DIRECTIVES.load(doc.data)` returns a `Directive` (a document written by an
older version is migrated step by step, 1 → 2 → …, in memory; a document of a newer version than this software
knows is refused with `SchemaTooNew`, never misread), `DIRECTIVES.put(directive)` returns the store operation
that writes it with its schema version (`v`). Documents without `v` are version 1 (written before versions).
`msgspec.convert` checks every field on the way in, so a malformed document is a clear error naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import msgspec

from citybrain.store.base import PutDoc

S = TypeVar("S", bound="Document")
Migration = Callable[[dict[str, Any]], dict[str, Any]]


class Document(msgspec.Struct, kw_only=True):
    """Base of typed documents: `v` is the schema version the document was written with."""

    v: int = 1


class SchemaTooNew(ValueError):
    """A document written by a newer citybrain than this one (its schema version is unknown here)."""


class DocumentType(Generic[S]):
    """One collection's documents: their Struct, current schema version and the migrations up to it."""

    def __init__(self, collection: str, struct: type[S], version: int = 1,
                 migrations: Mapping[int, Migration] | None = None, key: Callable[[S], str] | None = None) -> None:
        missing = [n for n in range(1, version) if n not in (migrations or {})]
        if missing:
            raise ValueError(f"{collection}: no migration from version {missing[0]} to {missing[0] + 1}")
        self.collection = collection
        self.struct = struct
        self.version = version
        self.migrations = dict(migrations or {})
        self.key = key or (lambda doc: str(getattr(doc, "id")))  # noqa: B009 - Structs without `id` pass key=

    def migrate(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return a stored document's data brought up to the current version (the stored copy is untouched)."""
        out = dict(data)
        v = int(out.get("v", 1))
        if v > self.version:
            raise SchemaTooNew(f"{self.collection}: a document of schema version {v}; this citybrain knows up to "
                               f"{self.version} (upgrade every process of the node)")
        while v < self.version:
            out = self.migrations[v](out)
            v += 1
            out["v"] = v
        out["v"] = v
        return out

    def load(self, data: Mapping[str, Any]) -> S:
        """Return a stored document as its Struct (migrated; a bad field raises msgspec.ValidationError)."""
        return msgspec.convert(self.migrate(data), self.struct)

    def dump(self, doc: S) -> dict[str, Any]:
        """Return the data to store: the Struct's fields with the current schema version."""
        data: dict[str, Any] = msgspec.to_builtins(doc)
        data["v"] = self.version
        return data

    def put(self, doc: S, expect_version: int | None = None) -> PutDoc:
        """Return the store operation writing a document (optionally only over the store version read)."""
        return PutDoc(self.collection, self.key(doc), self.dump(doc), expect_version=expect_version)

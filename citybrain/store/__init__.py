"""The store port: state, history, events, documents and dead letters, behind one contract."""

from citybrain.store.base import (
    AddDeadLetter,
    AppendEvent,
    DeadLetter,
    DeleteAttrs,
    DeleteDoc,
    DeleteEntity,
    Doc,
    EntityQuery,
    MarkReplayed,
    Op,
    PutDoc,
    SetAttrs,
    Store,
    UpsertEntity,
    WriteObservations,
)

__all__ = [
    "AddDeadLetter",
    "MarkReplayed",
    "AppendEvent",
    "DeadLetter",
    "DeleteAttrs",
    "DeleteDoc",
    "DeleteEntity",
    "Doc",
    "EntityQuery",
    "Op",
    "PutDoc",
    "SetAttrs",
    "Store",
    "UpsertEntity",
    "WriteObservations",
    "open_store",
]


def open_store(url: str) -> Store:
    """Return an (unopened) store for a SQLite path or a postgresql:// URL."""
    if url.startswith(("postgresql://", "postgres://")):
        from citybrain.store.postgres import PostgresStore

        return PostgresStore(url)
    from citybrain.store.sqlite import SqliteStore

    return SqliteStore(url[len("sqlite:///"):] if url.startswith("sqlite:///") else url)

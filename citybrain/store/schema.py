"""Schema migrations of both store adapters. Append, never edit: each (version, SQL) runs once."""

from __future__ import annotations

SQLITE_MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
CREATE TABLE entities (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    place TEXT,
    location TEXT,
    lon REAL,
    lat REAL,
    created_at TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    scope TEXT
);
CREATE INDEX entities_type ON entities(type, id);
CREATE INDEX entities_place ON entities(place);
CREATE INDEX entities_lonlat ON entities(lon, lat);
CREATE TABLE attrs (
    entity_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT,
    observed_at TEXT,
    unit TEXT,
    extra TEXT,
    PRIMARY KEY (entity_id, name)
) WITHOUT ROWID;
CREATE TABLE history (
    entity_id TEXT NOT NULL,
    name TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    value TEXT,
    unit TEXT,
    PRIMARY KEY (entity_id, name, observed_at)
) WITHOUT ROWID;
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    time TEXT NOT NULL,
    context TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_type ON events(type, seq);
CREATE TABLE docs (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (collection, id)
) WITHOUT ROWID;
CREATE TABLE deadletters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload TEXT NOT NULL,
    replayed INTEGER NOT NULL DEFAULT 0
)
""",
    ),
    # 2: `instance` joins the history key. Observations (WriteObservations) keep '' and stay idempotent per
    # (entity, attribute, observedAt); each attribute write of a command brings its own ULID, so two writes in
    # one millisecond, or a partial update that keeps the old observedAt, no longer replace each other's row.
    (
        2,
        """
CREATE TABLE history_v2 (
    entity_id TEXT NOT NULL,
    name TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    instance TEXT NOT NULL DEFAULT '',
    value TEXT,
    unit TEXT,
    PRIMARY KEY (entity_id, name, observed_at, instance)
) WITHOUT ROWID;
INSERT INTO history_v2(entity_id, name, observed_at, instance, value, unit)
    SELECT entity_id, name, observed_at, '', value, unit FROM history;
DROP TABLE history;
ALTER TABLE history_v2 RENAME TO history
""",
    ),
]

POSTGRES_MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
CREATE TABLE entities (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    place TEXT,
    location JSONB,
    lon DOUBLE PRECISION,
    lat DOUBLE PRECISION,
    created_at TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    scope TEXT
);
CREATE INDEX entities_type ON entities(type, id);
CREATE INDEX entities_place ON entities(place);
CREATE INDEX entities_lonlat ON entities(lon, lat);
CREATE TABLE attrs (
    entity_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT,
    observed_at TEXT,
    unit TEXT,
    extra TEXT,
    PRIMARY KEY (entity_id, name)
);
CREATE TABLE history (
    entity_id TEXT NOT NULL,
    name TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    value TEXT,
    unit TEXT,
    PRIMARY KEY (entity_id, name, observed_at)
);
CREATE TABLE events (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    time TEXT NOT NULL,
    context JSONB NOT NULL,
    data JSONB NOT NULL
);
CREATE INDEX events_type ON events(type, seq);
CREATE TABLE docs (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    data JSONB NOT NULL,
    version INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (collection, id)
);
CREATE INDEX docs_data ON docs USING GIN (data jsonb_path_ops);
CREATE TABLE deadletters (
    seq BIGSERIAL PRIMARY KEY,
    time TEXT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload TEXT NOT NULL,
    replayed BOOLEAN NOT NULL DEFAULT FALSE
)
""",
    ),
    # 2: `instance` joins the history key (see SQLITE_MIGRATIONS 2); adding a column with a constant default
    # rewrites nothing, the new primary key index is built once.
    (
        2,
        """
ALTER TABLE history ADD COLUMN instance TEXT NOT NULL DEFAULT '';
ALTER TABLE history DROP CONSTRAINT history_pkey;
ALTER TABLE history ADD PRIMARY KEY (entity_id, name, observed_at, instance)
""",
    ),
]

"""Typed, versioned documents: older documents are migrated on read, newer ones refused, bad fields named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from citybrain.config import Settings
from citybrain.documents import Document, DocumentType, SchemaTooNew
from citybrain.federation.directives import DIRECTIVE_DOCS, Directive
from citybrain.runtime import CityBrain
from citybrain.trust.grants import GRANT_DOCS


class Notice(Document, kw_only=True):
    id: str
    text: str
    priority: int = 0
    audience: list[str] = []


def split_audience(d: dict[str, Any]) -> dict[str, Any]:  # v2 -> v3: "a,b" became a list
    return {**d, "audience": [a for a in str(d.pop("audience", "")).split(",") if a]}


def add_priority(d: dict[str, Any]) -> dict[str, Any]:  # v1 -> v2: priority added, urgent notices 2
    return {**d, "priority": 2 if d.get("urgent") else 0}


NOTICES = DocumentType("notices", Notice, version=3, migrations={1: add_priority, 2: split_audience})


def test_an_old_document_is_migrated_step_by_step_on_read() -> None:
    v1 = {"id": "n1", "text": "flood", "urgent": True, "audience": "m1,m2"}  # written before versions: v1
    got = NOTICES.load(v1)
    assert got == Notice(id="n1", text="flood", priority=2, audience=["m1", "m2"], v=3)
    assert v1 == {"id": "n1", "text": "flood", "urgent": True, "audience": "m1,m2"}  # the stored copy untouched
    assert NOTICES.load({"v": 2, "id": "n2", "text": "x", "priority": 1, "audience": ""}).audience == []
    assert NOTICES.dump(got)["v"] == 3 and NOTICES.load(NOTICES.dump(got)) == got
    op = NOTICES.put(got, expect_version=4)
    assert (op.collection, op.id, op.data["v"], op.expect_version) == ("notices", "n1", 3, 4)


def test_a_newer_document_is_refused_and_a_bad_field_named() -> None:
    with pytest.raises(SchemaTooNew, match="schema version 4; this citybrain knows up to 3"):
        NOTICES.load({"v": 4, "id": "n", "text": "t"})
    with pytest.raises(msgspec.ValidationError, match="priority"):
        NOTICES.load({"v": 3, "id": "n", "text": "t", "priority": "high"})
    with pytest.raises(ValueError, match="no migration from version 2 to 3"):
        DocumentType("x", Notice, version=3, migrations={1: add_priority})


async def test_directives_and_grants_are_typed_documents(tmp_path: Path) -> None:
    """A directive stored before schema versions loads as version 1; grants keep who revoked them."""
    old = {"id": "d1", "kind": "notice", "text": "boil water", "target": "*", "nodes": ["c1"],
           "issued_at": "2026-01-01T00:00:00.000Z", "actor": "admin:a", "origin": "city"}
    d = DIRECTIVE_DOCS.load(old)
    assert isinstance(d, Directive) and d.v == 1 and d.nodes == ["c1"] and d.read_at is None
    async with CityBrain(Settings(store=str(tmp_path / "g.db"))) as rt:
        await rt.execute("catalog.publish", {"id": "air", "title": "Air", "owner": "ecology", "classification": "restricted",
                                             "source": {"kind": "entities", "types": ["AirQualityObserved"]}})
        ask = await rt.execute("grant.request", {"dataset": "air", "purpose": "study", "grantee": "uni",
                                                 "expires": "2030-01-01T00:00:00Z"}, rt.context("external_user:uni"))
        ended = await rt.execute("grant.revoke", {"id": ask["id"], "reason": "done"}, rt.context("data_officer:o"))
        stored = await rt.store.get_doc("grants", ask["id"])
        assert stored is not None and stored.data["v"] == 1
        grant = GRANT_DOCS.load(stored.data)
        assert grant.status == "rejected" and grant.revoked_by == "data_officer:o" == ended["revoked_by"]

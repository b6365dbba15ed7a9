"""The ledger service over HTTP (checkpoint, key, proofs, entries) and the city node witnessing communities."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from citybrain.api import create_app
from citybrain.config import Settings
from citybrain.errors import Conflict, ValidationError
from citybrain.ledger.checkpoint import open_checkpoint
from citybrain.ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from citybrain.ledger.note import Verifier
from citybrain.runtime import CityBrain

COMPONENTS = ["citybrain.model.commands", "citybrain.ledger.service"]


def node(tmp_path: Path, name: str) -> CityBrain:
    return CityBrain(Settings(store=str(tmp_path / f"{name}.db"), node_id=name), components=COMPONENTS)


def unb64(items: list[str]) -> list[bytes]:
    return [base64.b64decode(s) for s in items]


async def test_http_proofs_verify_against_the_signed_checkpoint(tmp_path: Path) -> None:
    async with node(tmp_path, "city") as rt:
        for i in range(23):
            await rt.emit("test.decision", {"i": i})
        first = await rt.ports.ledger.flush()
        for i in range(9):
            await rt.emit("test.decision", {"i": 100 + i})
        await rt.ports.ledger.flush()
        app = create_app(rt, manage_runtime=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            vkey = (await c.get("/api/v1/ledger/key")).text.strip()
            note = (await c.get("/api/v1/ledger/checkpoint")).text
            cp = open_checkpoint(note, Verifier.from_vkey(vkey), origin="citybrain/city").checkpoint
            assert cp.size == 32
            entries = (await c.get("/api/v1/ledger/entries", params={"start": 20, "end": 23})).json()
            assert [e["index"] for e in entries] == [20, 21, 22] and '"i":20' in entries[0]["entry"]
            proof = (await c.get("/api/v1/ledger/proof/inclusion", params={"index": 21})).json()
            verify_inclusion(21, cp.size, leaf_hash(entries[1]["entry"].encode()), unb64(proof["proof"]), cp.root)
            old = open_checkpoint(first, Verifier.from_vkey(vkey)).checkpoint
            cons = (await c.get("/api/v1/ledger/proof/consistency", params={"from": old.size})).json()
            verify_consistency(old.size, cp.size, old.root, cp.root, unb64(cons["proof"]))
            bad = await c.get("/api/v1/ledger/proof/inclusion", params={"index": 40})
            assert bad.status_code == 400
        kpis = await rt.ports.ledger.kpis(None)
        assert kpis["size"] == 32 and kpis["checkpoint"] == note and kpis["time"]


async def test_city_witnesses_community_checkpoints(tmp_path: Path) -> None:
    async with node(tmp_path, "c1") as community, node(tmp_path, "city") as city:
        ledger = community.ports.ledger
        for i in range(5):
            await community.emit("test.local", {"i": i})
        note5 = await ledger.flush()
        vkey = ledger.vkey
        first = await city.execute("ledger.witness", {"node": "c1", "checkpoint_note": note5, "vkey": vkey})
        assert first["size"] == 5 and first["consistency"] == "first"
        for i in range(4):
            await community.emit("test.local", {"i": 10 + i})
        note9 = await ledger.flush()
        proof = [base64.b64encode(h).decode() for h in ledger.log.consistency_proof(5, 9)]
        got = await city.execute("ledger.witness", {"node": "c1", "checkpoint_note": note9, "proof": proof})
        assert got["consistency"] == "proven"
        with pytest.raises(Conflict):  # rolling back to an older checkpoint is refused
            await city.execute("ledger.witness", {"node": "c1", "checkpoint_note": note5})
        with pytest.raises(Conflict):  # a different key for the same node is refused
            await city.execute("ledger.witness", {"node": "c1", "checkpoint_note": note9,
                                                  "vkey": city.ports.ledger.vkey})
        with pytest.raises(ValidationError):  # a note not signed by the pinned key is refused
            await city.execute("ledger.witness", {"node": "c1", "checkpoint_note": await city.ports.ledger.flush()})
        with pytest.raises(ValidationError):  # a wrong consistency proof is refused
            await community.emit("test.local", {"i": 99})
            note10 = await ledger.flush()
            await city.execute("ledger.witness", {"node": "c1", "checkpoint_note": note10, "proof": proof})
        # the city's own ledger commits to what it witnessed
        await city.ports.ledger.flush()
        witnessed = [e for _, e in await city.ports.ledger.log.entries(0, city.ports.ledger.log.size)]
        assert any(b"command.ledger.witness" in e and note9.split("\n")[2].encode() in e for e in witnessed)

"""The durable ledger log: tampering is caught by `citybrain ledger verify`, checkpoints keep their cadence."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citybrain.config import Settings
from citybrain.ledger.cli import ledger_app
from citybrain.ledger.log import LEAVES, bundle_id
from citybrain.runtime import CityBrain

COMPONENTS = ["citybrain.model.commands", "citybrain.ledger.service"]


async def fill(store: str, n: int) -> None:
    """Record n events through a node with a ledger, then stop it (a final checkpoint is signed)."""
    rt = CityBrain(Settings(store=store, ledger_checkpoint_ms=50), components=COMPONENTS)
    async with rt:
        for i in range(n):
            await rt.emit("test.step", {"i": i, "note": f"step {i}"})
            if i % 7 == 3:
                await asyncio.sleep(0.06)  # let the appender sign checkpoints in between


def verify(store: str) -> tuple[int, str]:
    result = CliRunner().invoke(ledger_app, ["verify", "--store", store])
    return result.exit_code, result.output


def edit_bundle(store: str, change: Callable[[list[str]], None]) -> None:
    """Apply `change` to the stored entries of bundle 0 (entries 0..255), as an attacker with the file would."""
    with sqlite3.connect(store) as db:
        (data,) = db.execute("SELECT data FROM docs WHERE collection=? AND id=?", (LEAVES, bundle_id(0))).fetchone()
        doc = json.loads(data)
        change(doc["entries"])
        db.execute("UPDATE docs SET data=? WHERE collection=? AND id=?", (json.dumps(doc), LEAVES, bundle_id(0)))


@pytest.fixture
def store(tmp_path: Path) -> str:
    path = str(tmp_path / "ledger.db")
    asyncio.run(fill(path, 40))
    return path


def test_untouched_log_verifies(store: str) -> None:
    code, out = verify(store)
    assert code == 0 and out.startswith("OK: 40 entries, 40 proven"), out
    r = CliRunner().invoke(ledger_app, ["key", "--store", store])
    assert r.exit_code == 0 and r.output.startswith("citybrain/city+")


@pytest.mark.parametrize("index", [0, 17, 39])
def test_changing_any_byte_names_the_entry(store: str, index: int) -> None:
    def change(entries: list[str]) -> None:
        entries[index] = entries[index].replace("step", "stap", 1)

    edit_bundle(store, change)
    code, out = verify(store)
    assert code == 1 and f"first bad entry {index}" in out, out


def test_dropping_an_entry_names_it(store: str) -> None:
    edit_bundle(store, lambda entries: entries.pop(12))
    code, out = verify(store)
    assert code == 1 and "first bad entry 12" in out, out


def test_dropping_the_tail_is_caught(store: str) -> None:
    edit_bundle(store, lambda entries: entries.__delitem__(slice(35, None)))
    code, out = verify(store)
    assert code == 1 and "first bad entry 35" in out and "truncated" in out, out


def test_dropping_a_whole_bundle_is_caught(store: str) -> None:
    with sqlite3.connect(store) as db:
        db.execute("DELETE FROM docs WHERE collection=?", (LEAVES,))
    code, out = verify(store)
    assert code == 1 and "first bad entry 0" in out, out


def test_reordering_entries_names_the_first(store: str) -> None:
    def swap(entries: list[str]) -> None:
        entries[21], entries[22] = entries[22], entries[21]

    edit_bundle(store, swap)
    code, out = verify(store)
    assert code == 1 and "first bad entry 21" in out, out


def test_forged_checkpoint_is_refused(store: str) -> None:
    with sqlite3.connect(store) as db:
        db.execute("UPDATE docs SET data=replace(data, 'citybrain/city', 'citybrain/evil') "
                   "WHERE collection='ledger_checkpoints' AND id=(SELECT max(id) FROM docs WHERE "
                   "collection='ledger_checkpoints')")
    code, out = verify(store)
    assert code == 1 and "checkpoint" in out, out


def test_checkpoint_cli_signs_the_rest(tmp_path: Path) -> None:
    path = str(tmp_path / "cli.db")

    async def record() -> None:
        async with CityBrain(Settings(store=path), components=["citybrain.model.commands"]) as rt:
            for i in range(5):
                await rt.emit("test.offline", {"i": i})  # no ledger running: not yet in the log

    asyncio.run(record())
    r = CliRunner().invoke(ledger_app, ["checkpoint", "--store", path])
    assert r.exit_code == 0 and r.output.splitlines()[1] == "5", r.output
    assert verify(path)[0] == 0


async def test_checkpoints_at_least_once_a_second_under_load(tmp_path: Path) -> None:
    rt = CityBrain(Settings(store=str(tmp_path / "load.db")), components=COMPONENTS)
    async with rt:
        ledger = rt.ports.ledger
        t0 = time.time()
        for batch in range(50):  # 5,000 events, 100 at a time (the store commits them as groups)
            await asyncio.gather(*(rt.emit("load.tick", {"b": batch, "i": i}) for i in range(100)))
        t1 = time.time()
        while ledger.log.size < 5000:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)
        times = [t for t in ledger.checkpoint_times if t0 <= t]
        assert times, "no checkpoint was signed during the load"
        marks = [t0, *times]
        gaps = [b - a for a, b in zip(marks, marks[1:], strict=False) if a <= t1]
        assert max(gaps) <= 1.0, (gaps, t1 - t0)
        assert ledger.log.latest_size == ledger.log.size

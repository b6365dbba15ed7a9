"""The checker: after a scenario, is every acknowledged observation in state and history, exactly once?"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

from citybrain.store import open_store


@dataclass
class Result:
    """One row of the reliability table."""

    scenario: str
    offered: str = ""
    acknowledged: int = 0
    stored: int = 0
    lost: int = 0
    duplicates: int = 0
    recovery_s: float | None = None
    ok: bool = True
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the row as plain data."""
        return asdict(self)


async def _check(store_url: str, acked: dict[str, set[int]]) -> dict[str, Any]:
    store = open_store(store_url)
    await store.open()
    try:
        stored = lost = dups = state_bad = 0
        extra = 0
        for entity, want in sorted(acked.items()):
            rows = await store.history(entity, "seq", limit=10_000_000)
            values = [r.value for r in rows]
            have = set(values)
            dups += len(values) - len(have)
            stored += len(want & have)
            lost += len(want - have)
            extra += len(have - want)
            ent = await store.get_entity(entity)
            if rows:
                newest = max(rows, key=lambda r: r.observed_at)
                attr = (ent.attrs if ent is not None else {}).get("seq") if ent is not None else None
                if attr is None or attr.get("value") != newest.value:
                    state_bad += 1
        return {"stored": stored, "lost": lost, "duplicates": dups, "state_mismatches": state_bad,
                "stored_unacknowledged": extra}
    finally:
        await store.close()


def check(store_url: str, acked: dict[str, set[int]]) -> dict[str, Any]:
    """Compare acknowledged observations with the store's history and state (node must be stopped)."""
    return asyncio.run(_check(store_url, acked))


def fill(result: Result, acked: dict[str, set[int]], found: dict[str, Any]) -> Result:
    """Copy the checker's findings into a result row; lost, duplicates or bad state make it fail."""
    result.acknowledged = sum(len(v) for v in acked.values())
    result.stored = int(found["stored"])
    result.lost = int(found["lost"])
    result.duplicates = int(found["duplicates"])
    result.details["state_mismatches"] = found["state_mismatches"]
    result.details["stored_unacknowledged"] = found["stored_unacknowledged"]
    if result.lost or result.duplicates or found["state_mismatches"]:
        result.ok = False
    return result


def table(results: list[Result]) -> str:
    """Return the results as a markdown table."""
    lines = ["| scenario | offered load | acknowledged | stored | lost | duplicates | recovery | ok | notes |",
             "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for r in results:
        rec = f"{r.recovery_s:.2f} s" if r.recovery_s is not None else "–"
        lines.append(f"| {r.scenario} | {r.offered} | {r.acknowledged} | {r.stored} | {r.lost} | {r.duplicates} "
                     f"| {rec} | {'yes' if r.ok else 'NO'} | {'; '.join(r.notes)} |")
    return "\n".join(lines)

"""Replaying dead-lettered observations once what they lacked exists."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from citybrain.ingest.observations import Ingest
from citybrain.ports import Ports

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


async def replay(rt: CityBrain, limit: int = 10000) -> dict[str, Any]:
    """Resubmit dead-lettered ingest messages; mark those now stored as replayed."""
    letters = [d for d in await rt.store.deadletters(limit) if d.source.startswith("ingest:")]
    ok: list[int] = []
    still = 0
    for letter in letters:
        try:
            item = orjson.loads(letter.payload)
        except orjson.JSONDecodeError:
            still += 1
            continue
        rows, rejected, _ = rt.ports.own(Ports.ingest, Ingest).parse([item])
        if rejected:
            still += 1
            continue
        report = await rt.ports.ingest.submit([item], rt.context("deadletter-replay"), "replay")
        if report.stored:
            ok.append(letter.seq)
    if ok:
        await rt.store.mark_replayed(ok)
    return {"replayed": len(ok), "still_failing": still}

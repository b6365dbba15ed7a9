"""Replaying dead-lettered observations once what they lacked exists: the command `deadletters.replay`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.errors import ValidationError
from citybrain.ingest.observations import Ingest
from citybrain.ports import Ports
from citybrain.store import MarkReplayed

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


class Replay(msgspec.Struct, kw_only=True):
    """deadletters.replay: submit dead-lettered ingest messages again (up to `limit`, oldest first)."""

    limit: int = 10000


async def _replay(rt: CityBrain, cmd: Replay, ctx: Context) -> Outcome:
    """Resubmit each dead-lettered ingest message that now passes validation; mark the stored ones replayed.

    The observations are stored by ingest as they are resubmitted; the marks commit with this command's event
    (`command.deadletters.replay`: how many, which letters), so the history says who replayed what. A message
    replayed twice (a crash between the two) rewrites the same history rows: its readings carry their time."""
    if not 1 <= cmd.limit <= 100_000:
        raise ValidationError(f"limit: {cmd.limit} is not between 1 and 100000", field="limit")
    ingest = rt.ports.own(Ports.ingest, Ingest)
    letters = [d for d in await rt.store.deadletters(cmd.limit) if d.source.startswith("ingest:")]
    ok: list[int] = []
    still = 0
    for letter in letters:
        try:
            item = orjson.loads(letter.payload)
        except orjson.JSONDecodeError:
            still += 1
            continue
        _, rejected, _ = ingest.parse([item])
        if rejected:
            still += 1
            continue
        report = await ingest.submit([item], ctx, "replay")
        if report.stored:
            ok.append(letter.seq)
    result = {"replayed": len(ok), "still_failing": still}
    return Outcome(ops=[MarkReplayed(ok)] if ok else [], result=result, event=result | {"letters": ok})


async def replay(rt: CityBrain, limit: int = 10000, ctx: Context | None = None) -> dict[str, Any]:
    """Run `deadletters.replay` (as `ctx`'s actor, else the node itself) and return its result."""
    result: dict[str, Any] = await rt.execute("deadletters.replay", {"limit": limit},
                                              ctx or rt.context("deadletter-replay"))
    return result


def register(rt: CityBrain) -> None:
    """Register the replay command."""
    rt.commands.register("deadletters.replay", Replay, _replay,
                         "submit dead-lettered observations again; mark those stored since as replayed")

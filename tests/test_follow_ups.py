"""Events reach the bus in commit order: a follow-up command publishes after the command that caused it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec

from citybrain.bus import Message
from citybrain.clock import FakeClock
from citybrain.commands import Outcome
from citybrain.config import Settings
from citybrain.context import Context
from citybrain.runtime import CityBrain


class Step(msgspec.Struct, kw_only=True):
    """A test command: `then` names the follow-ups its after-hook runs."""

    name: str
    then: list[str] = []


async def test_follow_ups_publish_after_their_parent(tmp_path: Path) -> None:
    rt = CityBrain(Settings(store=str(tmp_path / "c.db"), bus="memory"), clock=FakeClock(),
                   components=["citybrain.model.commands"])
    spawned: list[asyncio.Task[Any]] = []

    async def step(rt: CityBrain, cmd: Step, ctx: Context) -> Outcome:
        async def after() -> None:
            for name in cmd.then:
                await rt.execute("test.step", {"name": name, "then": [f"{name}.1"] if name == "b" else []},
                                 ctx)
            await rt.emit("test.noted", {"by": cmd.name}, ctx)
            if cmd.name == "a":  # a task started inside the hook runs later: it must still publish
                spawned.append(asyncio.create_task(rt.execute("test.step", {"name": "late"}, ctx)))

        return Outcome(result=cmd.name, event={"name": cmd.name}, after=after)

    seen: list[str] = []

    async def on_event(msg: Message) -> None:
        data = msgspec.json.decode(msg.data)
        seen.append(data["data"].get("name") or f"noted:{data['data']['by']}")

    async with rt:
        rt.commands.register("test.step", Step, step, "a test step")
        await rt.bus.subscribe("cb.event.>", on_event)
        await rt.execute("test.step", {"name": "a", "then": ["b", "c"]})
        await asyncio.gather(*spawned)
        for _ in range(100):
            if len(seen) >= 9:
                break
            await asyncio.sleep(0.01)
        stored = [e.data.get("name") for e in await rt.store.events() if e.type == "command.test.step"]
    # the store commits a, then its follow-ups b (and b's own b.1), then c; the bus shows the same order
    assert stored[:4] == ["a", "b", "b.1", "c"]
    assert seen[:8] == ["a", "b", "b.1", "noted:b.1", "noted:b", "c", "noted:c", "noted:a"]
    assert seen[8:] == ["late", "noted:late"][: len(seen) - 8] and "late" in seen

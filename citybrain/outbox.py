"""Write-behind for the observation pipeline: record events and documents without waiting for the commit.

The pipeline must never stall on a database commit (an alert at 5,000 obs/s cannot wait ~10 ms per
write), so its writes are queued in order and committed in batches by one background task, while the
events are published at once. `flush()` waits for everything queued so far (tests, shutdown).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from citybrain.events import Event
from citybrain.store import AppendEvent
from citybrain.store.base import Op

if TYPE_CHECKING:
    from citybrain.context import Context
    from citybrain.runtime import CityBrain


class Outbox:
    """Ordered, batched, background store writes plus immediate publishing."""

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self.pending: list[Op] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        rt.on_stop(self.flush)

    def write(self, *ops: Op) -> None:
        """Queue store operations (committed soon, in order)."""
        self.pending.extend(ops)
        if self._task is None or self._task.done():
            self._task = self.rt.spawn(self._drain(), name="pipeline-outbox")

    async def emit(self, type_: str, data: dict[str, Any], ctx: Context | None = None) -> Event:
        """Queue the event for the event history and publish it now."""
        event = Event(type=type_, time=self.rt.now(), context=ctx or self.rt.context(), data=data)
        self.write(AppendEvent(event))
        await self.rt.publish(event)
        return event

    async def _drain(self) -> None:
        while self.pending:
            ops, self.pending = self.pending, []
            await self.rt.store.apply(ops)
            self.batches += 1

    async def flush(self) -> None:
        """Wait until every queued write is committed."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

"""The event relay: every committed event reaches the bus, also when its process died between commit and publish.

A command's writes and its event commit together, then the process publishes the event. A process killed
(or cut off from NATS) between the two leaves the event in the store and off the bus: the other processes'
followers (entity directory, subscriptions, case cache, modes …) never hear of it. The relay closes that
gap as a singleton job of the node (`events-relay`): it follows the events table in commit order (`seq`) and
publishes each event again, `delay` seconds after it was recorded, with the event id as its JetStream
message id. An event its process did publish is dropped by the server as a duplicate (the stream's
duplicate window, 120 s by default, is far longer than the delay); one that never made it is delivered now,
counted and logged. The cursor is stored after each round, so the next owner of the job carries on where the
last stopped; events older than the duplicate window are not sent again (a duplicate could then reach
subscribers), and a relay that falls that far behind says so.

Only on a bus that keeps message ids (NATS JetStream). On the in-process bus the bus dies with the process,
so there is nothing to relay.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from citybrain.clock import parse_time
from citybrain.errors import AlreadyExists, Conflict
from citybrain.events import encode_event
from citybrain.store import PutDoc

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

log = logging.getLogger("citybrain.relay")

RELAY = "event_relay"  # collection of the relay's cursor document (id "cursor")
PAGE = 2000


class EventRelay:
    """Publishes committed events again, in commit order, so that none stays off the bus."""

    def __init__(self, rt: CityBrain, delay: float = 3.0, every: float = 1.0) -> None:
        self.rt = rt
        self.delay = delay
        self.every = every
        self.window = float(getattr(rt.bus, "duplicate_window", 120.0))
        self.cursor: int | None = None
        self._version = 0
        self.relayed = 0  # events sent again (duplicates included)
        self.recovered = 0  # events that were not on the bus until the relay sent them
        self.too_old = 0  # events the relay reached only after the duplicate window

    async def run(self) -> None:
        """The singleton job: a round every `every` seconds until cancelled."""
        await self.load()
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # store or bus away: the next round tries again from the same cursor
                log.warning("event relay round failed: %r", exc)
            await asyncio.sleep(self.every)

    async def load(self) -> None:
        """Read the stored cursor (where the last owner of the job stopped)."""
        doc = await self.rt.store.get_doc(RELAY, "cursor")
        self.cursor = int(doc.data.get("seq", 0)) if doc is not None else 0
        self._version = doc.version if doc is not None else 0

    async def round(self) -> int:
        """Send again the events recorded more than `delay` seconds ago after the cursor; return how many."""
        if self.cursor is None:
            await self.load()
        assert self.cursor is not None
        now = self.rt.clock.now().timestamp()
        sent = 0
        start = self.cursor
        while True:
            events = await self.rt.store.events(after=self.cursor, limit=PAGE)
            ripe, batch, upto = True, [], len(events)
            for k, event in enumerate(events):
                age = now - parse_time(event.time).timestamp()
                if age < self.delay:
                    ripe, upto = False, k
                    break
                if age > self.window - self.delay:
                    self.too_old += 1
                else:
                    batch.append(event)
            for i in range(0, len(batch), 64):  # acks awaited 64 at a time (most are duplicates, dropped)
                chunk = batch[i:i + 64]
                for event, new in zip(chunk, await asyncio.gather(*[self._send(e) for e in chunk]), strict=True):
                    if new:
                        self.recovered += 1
                        log.warning("event %s (seq %s, %s) was committed but not on the bus: relayed",
                                    event.id, event.seq, event.type)
            sent += len(batch)
            done = [e.seq for e in events[:upto] if e.seq is not None]
            if done:
                self.cursor = done[-1]
            if not ripe or len(events) < PAGE:
                break
        if self.too_old and self._version == 0:  # the node's first relay: what came before is history
            log.info("event relay starts at seq %d (older events are past the bus's duplicate window)", self.cursor)
        elif self.too_old:
            log.error("event relay fell behind by more than the duplicate window (%g s): %d events not checked",
                      self.window, self.too_old)
        self.too_old = 0
        self.relayed += sent
        if self.cursor != start:
            await self._save()
        return sent

    async def _send(self, event: Any) -> bool:
        bus = self.rt.bus
        data = encode_event(event)
        republish = getattr(bus, "republish", None)
        if republish is not None:
            return bool(await republish(event.subject(), data, msg_id=event.id))
        await bus.publish(event.subject(), data, msg_id=event.id)
        return False

    async def _save(self) -> None:
        assert self.cursor is not None
        doc = {"seq": self.cursor, "owner": self.rt.cluster.process_id, "time": self.rt.now()}
        try:
            await self.rt.store.apply([PutDoc(RELAY, "cursor", doc, expect_version=self._version)])
        except (Conflict, AlreadyExists):  # another process runs the job now (this one lost its lease)
            await self.load()
            return
        self._version += 1

    def describe(self) -> dict[str, Any]:
        """What the relay did on this process (introspection)."""
        return {"cursor": self.cursor, "relayed": self.relayed, "recovered": self.recovered,
                "delay_s": self.delay, "duplicate_window_s": self.window}

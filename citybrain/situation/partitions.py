"""The observation pipeline, partitioned by community: each partition's state lives where its owner is.

Ingest publishes every stored batch on cb.obs.<n>, n being the partition of the community the sensor's
grid cell lies in (`rt.cluster.partition_of`). This process runs partition n only while it holds n's lease:

* acquire(n): read n's checkpoint (collection `pipeline_checkpoints`, id n) and hand each part of the state
  back to its owner (situation leaves, rule units, detector series, risk), then subscribe cb.obs.<n> with
  the durable consumer `pipeline-<n>`: the server kept its position, so the new owner goes on where the
  last one stopped.
* while running: every `pipeline_checkpoint` seconds (default 2) a changed partition is checkpointed, and
  every `situation_throttle` (default 1 s) its read model is published (collection `situation_snapshots`),
  which is what the other processes answer situation and risk reads from.
* release(n): stop consuming, let the batch in hand finish, write the last checkpoint and snapshot (only
  if the lease is still ours: after losing it, another process owns the partition and our state is
  stale), then forget the state.

Checkpoints are pickles (zlib-compressed): the state is many small slotted objects (Rolling buckets,
detector bitmaps, rule timers) that only this node's processes of the same format read back. Unpickling
runs code, so a checkpoint carries an HMAC-SHA256 over its partition, format and bytes, keyed by a key
derived from the node secret (which is never in the store); one whose MAC does not verify (written by
someone holding the database but not the node secret, or moved to another partition) is refused with an
error in the log and never unpickled: the partition starts empty and replays what the bus still holds. Every
write names the document version it read, so a process that lost its lease without noticing cannot
overwrite the new owner's checkpoint (Conflict: it drops the partition).

Nothing lost across a crash: a batch is acknowledged to the bus only after it is in the state and, with the
journal on (`pipeline_journal`, on by default), committed to `pipeline_journal` (one write per
round of batches, group-committed). The next checkpoint deletes the entries it covers, in its transaction.
A new owner restores the checkpoint, handles the journal entries after it again, then consumes: what the
dead owner acknowledged is in the checkpoint or the journal, and what it did not is delivered again. The
ids of the last 512 batches travel with the checkpoint (and the journal), so a batch that is delivered
again but is in the state already is skipped. A node of one process on the in-process bus restarted after a
crash takes its partitions back the same way (tests/scaleout/test_scaleout_restart.py); with the journal off,
a crash loses up to `pipeline_checkpoint` seconds of a partition's windows (a storm half-seen before the crash
may then never cross its threshold).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import pickle
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from citybrain.bus import Message, Subscription
from citybrain.errors import AlreadyExists, Conflict
from citybrain.model.entity import ObservationRow
from citybrain.obs import decode_rows, encode_rows, obs_subject
from citybrain.store import DeleteDoc, PutDoc

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

log = logging.getLogger("citybrain.pipeline")

CHECKPOINTS = "pipeline_checkpoints"
SNAPSHOTS = "situation_snapshots"
JOURNAL = "pipeline_journal"
FORMAT = 2  # 2: checkpoints carry a MAC. Bump when a captured state changes shape: older checkpoints are then ignored, not misread
RECENT_IDS = 512
REROUTED = "rerouted-from"  # header of a batch the pipeline moved to the partition it belongs to


class PartState(Protocol):
    """A component's state kept per partition, moving with the partition's lease."""

    name: str

    def capture(self, n: int) -> Any:
        """Return partition n's state, picklable (called between two batches)."""

    def restore(self, n: int, state: Any) -> None:
        """Take back partition n's state from a checkpoint."""

    def drop(self, n: int) -> None:
        """Forget partition n's state (another process owns it now)."""


class Publisher(Protocol):
    """A component whose per-partition read model goes into the published snapshots."""

    name: str

    def publish(self, n: int) -> Any:
        """Return partition n's read model as JSON-able data."""

    def load(self, data: Any) -> Any:
        """Decode what publish() returned (as read back from the store)."""


@dataclass
class Part:
    """This process's bookkeeping of one owned partition."""

    n: int
    seq: int = 0  # stream seq of the last batch folded into the state
    version: int = 0  # version of the checkpoint document we read or wrote last
    snap_version: int = 0
    dirty: bool = False  # changed since the last checkpoint
    changed: bool = False  # changed since the last published snapshot
    saved_at: float = field(default_factory=time.monotonic)
    recent: deque[str] = field(default_factory=deque)  # ids of the last batches handled, oldest first
    seen: set[str] = field(default_factory=set)
    sub: Subscription | None = None
    inflight: asyncio.Future[None] | None = None
    handled: int = 0
    jseq: int = 0  # number of the last journal entry written (or replayed) for this partition
    journaled: list[str] = field(default_factory=list)  # journal entries a checkpoint has not covered yet

    def remember(self, msg_id: str) -> None:
        """Note a handled batch id (bounded)."""
        self.recent.append(msg_id)
        self.seen.add(msg_id)
        while len(self.recent) > RECENT_IDS:
            self.seen.discard(self.recent.popleft())


@dataclass
class Published:
    """Another partition's snapshot as read from the store."""

    version: int
    seq: int
    owner: str
    time: str
    parts: dict[str, Any]


class Pipeline:
    """Owns this process's partitions: subscriptions, checkpoints, snapshots, and reads of the others'."""

    def __init__(self, rt: CityBrain, take: Callable[[list[ObservationRow]], Awaitable[Any]],
                 throttle: float = 1.0, interval: float = 2.0,
                 home: Callable[[ObservationRow], Awaitable[int]] | None = None, journal: bool = False) -> None:
        self.rt = rt
        self.journal = journal
        self.take = take
        self.home = home  # the partition a row belongs to, as the pipeline locates it
        self.throttle = max(0.01, throttle)
        self.interval = max(0.05, interval)
        self.holders: list[PartState] = []
        self.publishers: list[Publisher] = []
        self.after_publish: list[Callable[[], Awaitable[None]]] = []
        # components whose partitioned state lives in the store rather than in the checkpoint (e.g. open
        # alerts): on_acquire(n) runs after the restore and before consuming, on_release(n) after forgetting
        self.on_acquire: list[Callable[[int], Awaitable[None]]] = []
        self.on_release: list[Callable[[int], Awaitable[None]]] = []
        self.parts: dict[int, Part] = {}
        self.turn = asyncio.Lock()  # one batch at a time on this process; checkpoints are taken between batches
        self._moves = asyncio.Lock()  # acquire and release of partitions, one at a time
        self._io = asyncio.Lock()  # checkpoint and snapshot writes, one round at a time (versions stay in step)
        self.others: dict[int, Published] = {}
        self._others_at = -1e9
        self._reading = asyncio.Lock()
        self.skipped = 0
        self.rerouted = 0
        self.rounds = 0
        self._pending: list[tuple[Part, Message, asyncio.Future[None]]] = []
        self._runner: asyncio.Future[None] | None = None
        self._commits: set[asyncio.Future[None]] = set()  # journal writes in flight
        self.checkpoints = 0
        self.restores = 0
        self.refused = 0  # checkpoints whose MAC did not verify (never unpickled)
        self._key: bytes | None = None
        self.replayed = 0
        self._place_part: dict[str, int] = {}

    # registration ---------------------------------------------------------------------------
    def register(self, holder: PartState) -> None:
        """Keep a component's partitioned state in the checkpoints."""
        self.holders.append(holder)

    def publish_with(self, publisher: Publisher) -> None:
        """Put a component's read model into the published snapshots."""
        self.publishers.append(publisher)

    @property
    def partitions(self) -> int:
        """The node's number of partitions."""
        return self.rt.cluster.partitions

    def part_of_community(self, community: str | None) -> int:
        """Return the partition of a community (None: partition 0)."""
        return self.rt.cluster.partition_of(community)

    def part_of_place(self, place_id: str | None) -> int:
        """Return the partition of a grid cell or community: that of the community it is (in)."""
        if not place_id or self.partitions == 1:
            return 0
        got = self._place_part.get(place_id)
        if got is None:
            got = self.part_of_community(self.rt.ports.places.area_of(place_id, "Community"))
            if len(self._place_part) < 500_000:
                self._place_part[place_id] = got
        return got

    def forget_places(self) -> None:
        """Drop cached place → partition answers (the hierarchy changed)."""
        self._place_part.clear()

    # moving partitions ----------------------------------------------------------------------
    async def acquire(self, n: int) -> None:
        """Restore partition n from its checkpoint, then consume its observations."""
        async with self._moves:
            if n in self.parts:
                return
            part = Part(n)
            store = self.rt.store
            doc = await store.get_doc(CHECKPOINTS, str(n))
            snap = await store.get_doc(SNAPSHOTS, str(n))
            part.snap_version = snap.version if snap is not None else 0
            if doc is not None:
                part.version = doc.version
                data = doc.data
                blob = base64.b64decode(data["state"]) if data.get("format") == FORMAT else b""
                if data.get("format") == FORMAT and not hmac.compare_digest(str(data.get("mac", "")),
                                                                            self._mac(n, blob)):
                    self.refused += 1
                    log.error("partition %d: checkpoint refused: its MAC does not verify with this node's secret "
                              "(written by a process with another secret, or not by this node); starting empty",
                              n)
                elif data.get("format") == FORMAT and data.get("partitions") == self.partitions:
                    state = pickle.loads(zlib.decompress(blob))
                    async with self.turn:
                        for holder in self.holders:
                            got = state.get(holder.name)
                            if got is not None:
                                holder.restore(n, got)
                    part.seq = int(data.get("seq", 0))
                    part.jseq = int(data.get("jseq", 0))
                    for msg_id in data.get("recent", []):
                        part.remember(str(msg_id))
                    self.restores += 1
                    log.info("partition %d restored from the checkpoint of %s at seq %d", n, data.get("owner"),
                             part.seq)
                else:
                    log.warning("partition %d: checkpoint of format %s for %s partitions ignored (now %d, %d)",
                                n, data.get("format"), data.get("partitions"), FORMAT, self.partitions)
            self.parts[n] = part
            self.others.pop(n, None)

            async def handle(msg: Message) -> None:
                await self._on_message(part, msg)

            try:
                for hook in self.on_acquire:
                    await hook(n)
                await self._replay(part)
                part.sub = await self.rt.bus.subscribe(obs_subject(n), handle, durable=f"pipeline-{n}")
            except BaseException:
                self.parts.pop(n, None)
                async with self.turn:
                    for holder in self.holders:
                        holder.drop(n)
                raise
        _raise_if_cancelled()  # the partition is ours and running; a stop that came meanwhile releases it

    async def _replay(self, part: Part) -> None:
        """Handle again what the last owner journaled after its checkpoint (batches it had acknowledged)."""
        docs = await self.rt.store.list_docs(JOURNAL, {"partition": part.n}, limit=1_000_000)
        entries = sorted((d.data for d in docs), key=lambda e: int(e["jseq"]))
        part.journaled = [d.id for d in docs]  # covered by the next checkpoint: deleted with it
        fresh = [e for e in entries if int(e["jseq"]) > part.jseq]
        if not fresh:
            return
        async with self.turn:
            rows: list[ObservationRow] = []
            for entry in fresh:
                rows += decode_rows(base64.b64decode(entry["data"]))
                if entry.get("msg_id"):
                    part.remember(str(entry["msg_id"]))
                part.seq = max(part.seq, int(entry.get("seq", 0)))
            part.jseq = int(fresh[-1]["jseq"])
            if rows:
                await self.take(rows)
            part.dirty = part.changed = True
        self.replayed += len(fresh)
        log.info("partition %d: %d journaled batches after the checkpoint handled again", part.n, len(fresh))

    async def release(self, n: int) -> None:
        """Stop consuming partition n; save it if the lease is still ours; forget it."""
        async with self._moves:
            part = self.parts.get(n)
            if part is None:
                return
            ours = n in self.rt.cluster.owned  # released before giving the lease up, or after losing it
            if part.sub is not None:
                with contextlib.suppress(Exception):
                    await part.sub.unsubscribe()
                _raise_if_cancelled()
            if part.inflight is not None and not part.inflight.done():
                with contextlib.suppress(Exception):
                    await asyncio.wait([part.inflight])
            if ours:
                await self.publish([n])
                await self.checkpoint([n])
            await self._forget(part)

    async def _forget(self, part: Part) -> None:
        async with self.turn:
            if self.parts.get(part.n) is part:
                del self.parts[part.n]
            for holder in self.holders:
                holder.drop(part.n)
        self._others_at = -1e9  # read its snapshot from the store from now on
        for hook in self.on_release:
            with contextlib.suppress(Exception):
                await hook(part.n)

    async def _abandon(self, part: Part) -> None:
        """Another process wrote our partition's documents: it owns the partition; stop here at once."""
        async with self._moves:
            if self.parts.get(part.n) is not part:
                return
            log.warning("partition %d was taken over by another process; dropping it here", part.n)
            if part.sub is not None:
                with contextlib.suppress(Exception):
                    await part.sub.unsubscribe()
            await self._forget(part)

    async def reconcile(self) -> None:
        """Acquire owned partitions whose acquire failed (the store or bus was down)."""
        for n in sorted(self.rt.cluster.owned - set(self.parts)):
            try:
                await self.acquire(n)
            except Exception as exc:
                log.warning("partition %d: acquire failed again: %r", n, exc)

    # handling ---------------------------------------------------------------------------------
    async def _on_message(self, part: Part, msg: Message) -> None:
        # Batches of all owned partitions that are waiting are handled together in one round (one pass through
        # the listeners): ingest splits a batch by partition, and per-batch work downstream (plan triggers,
        # alert expiry) must not grow with the number of partitions. The round runs apart from this handler:
        # if the bus stops the subscription mid-round the batch still completes, so the state never holds half
        # a batch; the bus hands the message on and the id check skips it there.
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)
        part.inflight = fut
        self._pending.append((part, msg, fut))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.ensure_future(self._run_rounds())
        await asyncio.shield(fut)

    async def _run_rounds(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # let the deliveries of the other partitions that are ready join this round
            items, self._pending = self._pending, []
            try:
                await self._round(items)
            except BaseException as exc:
                for _, _, fut in items:
                    if not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
                if not isinstance(exc, Exception):
                    raise

    async def _round(self, items: list[tuple[Part, Message, asyncio.Future[None]]]) -> None:
        async with self.turn:
            rows: list[ObservationRow] = []
            taken: list[tuple[Part, Message, asyncio.Future[None], list[ObservationRow]]] = []
            for part, msg, fut in items:
                if self.parts.get(part.n) is not part:
                    fut.set_result(None)  # released while this batch waited: the next owner handles it
                    continue
                if msg.msg_id is not None and msg.msg_id in part.seen:
                    self.skipped += 1
                    fut.set_result(None)
                    continue
                try:  # nothing of this batch is applied yet: a failure here is its own
                    got = decode_rows(msg.data)
                    if self.home is not None and self.partitions > 1 and REROUTED not in msg.headers:
                        got = await self._reroute(part, msg, got)
                except Exception as exc:
                    fut.set_exception(exc)
                    continue
                rows += got
                taken.append((part, msg, fut, got))
            if rows:
                await self.take(rows)  # a failure fails every batch of the round: the bus delivers them again
            for part, msg, _, _ in taken:
                if msg.seq > part.seq:
                    part.seq = msg.seq
                if msg.msg_id is not None:
                    part.remember(msg.msg_id)
                part.handled += 1
                part.dirty = part.changed = True
            # numbered under the turn, with the state: a checkpoint covers exactly the entries numbered before it
            ops = self._journal_ops(taken) if self.journal else []
        self.rounds += 1
        if not ops:
            for _, _, fut, _ in taken:
                fut.set_result(None)
            return
        # apart from the rounds: batches of other partitions go on while this commit is in flight (the store's
        # one writer commits in order, so a checkpoint taken meanwhile deletes these entries after they exist)
        task = asyncio.ensure_future(self._acknowledge(taken, ops))
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)

    async def _acknowledge(self, taken: list[tuple[Part, Message, asyncio.Future[None], list[ObservationRow]]],
                           ops: list[Any]) -> None:
        try:
            await self._write_journal(taken, ops)
        except Exception as exc:
            for _, _, fut, _ in taken:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for _, _, fut, _ in taken:
            if not fut.done():
                fut.set_result(None)

    def _journal_ops(self, taken: list[tuple[Part, Message, asyncio.Future[None], list[ObservationRow]]]) -> list[Any]:
        """Number the round's batches in their partitions' journals; return the writes."""
        ops: list[Any] = []
        for part, msg, _, got in taken:
            part.jseq += 1
            entry_id = f"{part.n:04d}-{part.jseq:012d}"
            ops.append(PutDoc(JOURNAL, entry_id, {
                "partition": part.n, "jseq": part.jseq, "seq": msg.seq, "msg_id": msg.msg_id,
                "data": base64.b64encode(encode_rows(got)).decode()}, expect_version=0))
            part.journaled.append(entry_id)
        return ops

    async def _write_journal(self, taken: list[tuple[Part, Message, asyncio.Future[None], list[ObservationRow]]],
                             ops: list[Any]) -> None:
        """Commit the round's batches to the journal before they are acknowledged.

        A batch acknowledged is gone from the bus; until the next checkpoint covers it, the journal is where
        the partition's next owner finds it after a crash. A journal that cannot be written fails the round's
        batches: the bus delivers them again, and the id check skips them (they are in the state already)."""
        try:
            await self.rt.store.apply(ops)
        except (Conflict, AlreadyExists):  # another owner writes this partition's journal: it is theirs now
            for part in {id(p): p for p, _, _, _ in taken}.values():
                self.rt.spawn(self._abandon(part), name=f"pipeline-abandon-{part.n}")
            raise

    async def _reroute(self, part: Part, msg: Message, rows: list[ObservationRow]) -> list[ObservationRow]:
        """Send rows that belong to another partition there; return those that belong here.

        Ingest routes by the sensor's place as it knows it; a process that has not learnt an entity's place
        yet publishes it on partition 0. The pipeline locates every row itself (the store answers what
        memory does not know), and hands strays on once (marked, so two disagreeing processes cannot bounce
        a batch between them)."""
        assert self.home is not None
        by_part: dict[int, list[ObservationRow]] = {}
        for row in rows:
            by_part.setdefault(await self.home(row), []).append(row)
        if len(by_part) == 1 and part.n in by_part:
            return rows
        for m, stray in sorted(by_part.items()):
            if m == part.n:
                continue
            # the id is derived from the batch's: redelivered after a crash, the bus keeps it once
            msg_id = f"{msg.msg_id}>{m}" if msg.msg_id is not None else None
            await self.rt.bus.publish(obs_subject(m), encode_rows(stray), msg_id=msg_id,
                                      headers={**msg.headers, REROUTED: str(part.n)})
            self.rerouted += len(stray)
        return by_part.get(part.n, [])

    def touched(self) -> None:
        """Mark every owned partition changed (state moved outside a batch, e.g. an absence sweep)."""
        for part in self.parts.values():
            part.dirty = part.changed = True

    # checkpoints and snapshots ----------------------------------------------------------------
    async def checkpoint(self, ns: list[int]) -> int:
        """Write the checkpoints of these owned partitions; return how many were written."""
        async with self._io:
            taken: list[tuple[Part, dict[str, Any], bytes, list[str]]] = []
            async with self.turn:
                for n in ns:
                    part = self.parts.get(n)
                    if part is None:
                        continue
                    state = {h.name: h.capture(n) for h in self.holders}
                    blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
                    meta = {"partition": n, "partitions": self.partitions, "format": FORMAT, "seq": part.seq,
                            "owner": self.rt.cluster.process_id, "time": self.rt.now(), "handled": part.handled,
                            "recent": list(part.recent), "jseq": part.jseq}
                    covered, part.journaled = part.journaled, []
                    taken.append((part, meta, blob, covered))
                    part.dirty = False
                    part.saved_at = time.monotonic()
            if not taken:
                return 0
            packed = await asyncio.to_thread(lambda: [zlib.compress(blob, 1) for _, _, blob, _ in taken])
            done = await asyncio.gather(*[
                self._put(CHECKPOINTS, part, {**meta, "bytes": len(blob), "state": base64.b64encode(z).decode(),
                                              "mac": self._mac(part.n, z)},
                          "version", [DeleteDoc(JOURNAL, i) for i in covered])
                for (part, meta, blob, covered), z in zip(taken, packed, strict=True)])
            for (part, _, _, covered), ok in zip(taken, done, strict=True):
                if not ok:  # not covered after all: the next checkpoint deletes them
                    part.journaled[:0] = covered
            self.checkpoints += sum(done)
            return sum(done)

    def _mac(self, n: int, packed: bytes) -> str:
        """The MAC of partition n's packed checkpoint state under this node's checkpoint key."""
        if self._key is None:
            self._key = self.rt.subkey("pipeline-checkpoint")
        head = f"{n}:{self.partitions}:{FORMAT}:".encode()
        return hmac.new(self._key, head + packed, hashlib.sha256).hexdigest()

    async def publish(self, ns: list[int]) -> None:
        """Write the read snapshots of these owned partitions, then run the after-publish hooks."""
        async with self._io:
            taken: list[tuple[Part, dict[str, Any]]] = []
            async with self.turn:
                for n in ns:
                    part = self.parts.get(n)
                    if part is None:
                        continue
                    body = {p.name: p.publish(n) for p in self.publishers}
                    taken.append((part, {"partition": n, "partitions": self.partitions, "seq": part.seq,
                                         "owner": self.rt.cluster.process_id, "time": self.rt.now(), **body}))
                    part.changed = False
            await asyncio.gather(*[self._put(SNAPSHOTS, part, doc, "snap_version") for part, doc in taken])
        for hook in self.after_publish:
            await hook()

    async def _put(self, collection: str, part: Part, data: dict[str, Any], attr: str,
                   more: list[Any] | None = None) -> bool:
        expect = getattr(part, attr)
        try:
            await self.rt.store.apply([PutDoc(collection, str(part.n), data, expect_version=expect), *(more or [])])
        except (Conflict, AlreadyExists):
            self.rt.spawn(self._abandon(part), name=f"pipeline-abandon-{part.n}")
            return False
        except Exception as exc:  # the store is away: keep the partition dirty, the next round retries
            log.warning("partition %d: writing %s failed: %r", part.n, collection, exc)
            part.dirty = part.changed = True
            return False
        setattr(part, attr, expect + 1)
        return True

    async def keep(self) -> None:
        """Publish changed partitions every throttle period, checkpoint them every interval."""
        while True:
            await asyncio.sleep(min(self.throttle, self.interval))
            try:
                await self.reconcile()
                changed = sorted(n for n, p in self.parts.items() if p.changed)
                if changed:
                    await self.publish(changed)
                now = time.monotonic()
                due = sorted(n for n, p in self.parts.items() if p.dirty and now - p.saved_at >= self.interval)
                if due:
                    await self.checkpoint(due)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pipeline round failed")

    async def flush(self) -> None:
        """Publish and checkpoint every owned partition now (tests, benchmarks, shutdown)."""
        owned = sorted(self.parts)
        await self.publish(owned)
        await self.checkpoint(owned)

    # reading the other partitions -------------------------------------------------------------
    async def read_others(self, max_age: float | None = None) -> dict[int, Published]:
        """Return the snapshots of the partitions this process does not own (re-read when older than max_age)."""
        if len(self.parts) >= self.partitions:
            return {}
        age = self.throttle if max_age is None else max_age
        if time.monotonic() - self._others_at < age:
            return {n: p for n, p in self.others.items() if n not in self.parts}
        async with self._reading:
            if time.monotonic() - self._others_at >= age:
                started = time.monotonic()
                docs = await self.rt.store.list_docs(SNAPSHOTS, limit=self.partitions + 1000)
                fresh: dict[int, Published] = {}
                for doc in docs:
                    try:
                        n = int(doc.id)
                    except ValueError:
                        continue
                    data = doc.data
                    if n >= self.partitions or data.get("partitions") != self.partitions:
                        continue  # written when the node had another number of partitions
                    held = self.others.get(n)
                    if held is not None and held.version == doc.version:
                        fresh[n] = held
                        continue
                    parts = {p.name: p.load(data[p.name]) for p in self.publishers if p.name in data}
                    fresh[n] = Published(doc.version, int(data.get("seq", 0)), str(data.get("owner", "")),
                                         str(data.get("time", "")), parts)
                self.others = fresh
                self._others_at = started
        return {n: p for n, p in self.others.items() if n not in self.parts}

    def describe(self) -> dict[str, Any]:
        """What this process runs of the pipeline (introspection)."""
        return {"partitions": self.partitions, "owned": {str(n): {"seq": p.seq, "handled": p.handled,
                                                             "checkpoint_version": p.version}
                                                         for n, p in sorted(self.parts.items())},
                "checkpoints": self.checkpoints, "restores": self.restores, "refused_checkpoints": self.refused,
                "skipped_redeliveries": self.skipped, "rerouted_rows": self.rerouted, "rounds": self.rounds,
                "journal": self.journal, "replayed_batches": self.replayed}


def _raise_if_cancelled() -> None:
    """Re-raise a cancellation that an inner asyncio.wait_for swallowed (Python 3.11 loses one when the awaited
    task finishes at the moment of the cancel): whoever cancelled us (a stopping cluster) would wait forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _retrieve(fut: asyncio.Future[None]) -> None:
    # the handler awaiting the future hands a failure to the bus (retry, dead letter); when the handler was
    # stopped first, nobody awaits it, so say it here
    if not fut.cancelled() and (exc := fut.exception()) is not None:
        log.debug("pipeline batch failed: %r", exc)

"""The ledger service: tails the node's event history into the Merkle log and signs checkpoints.

The event table is the ordered source: every recorded command (case steps, mode changes,
directives, grants …) and every data access (recorded as a `data.access` event) gets a store seq
from the single writer, and the service appends the events' canonical JSON to the log in seq order,
so the ledger has the same clean total order. A signed C2SP checkpoint follows at most
`ledger_checkpoint_ms` after new entries (at least once a second under load), and one more at stop.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.errors import AlreadyExists, Conflict, ValidationError
from citybrain.ledger.checkpoint import open_checkpoint
from citybrain.ledger.log import PAGE, LedgerLog, entry_of
from citybrain.ledger.merkle import verify_consistency
from citybrain.ledger.note import Signer, Verifier
from citybrain.nodekeys import node_file, pin_node_secret, read_or_create
from citybrain.store.base import Op, PutDoc

if TYPE_CHECKING:
    from citybrain.config import Settings
    from citybrain.runtime import CityBrain

log = logging.getLogger("citybrain.ledger")

WITNESSED, WITNESS_HEADS, WITNESS_KEYS = "ledger_witnessed", "ledger_witness_heads", "ledger_witness_keys"


def origin_of(settings: Settings) -> str:
    """Return this node's log origin (also its key name), e.g. citybrain/city."""
    return f"citybrain/{settings.node_id}"


def key_path(settings: Settings) -> Any:
    """Return the path of the ledger signing key file (None for an in-memory store)."""
    from pathlib import Path

    return Path(settings.ledger_key) if settings.ledger_key else node_file(settings, ".ledger-key")


def load_signer(settings: Settings) -> Signer:
    """Return the node's ledger signer: the key itself in CITYBRAIN_LEDGER_KEY (PRIVATE+KEY+…), or the key
    file it names, or <store>.ledger-key generated and saved (0600) on first start."""
    if settings.ledger_key.startswith("PRIVATE+KEY+"):
        return Signer.from_skey(settings.ledger_key.strip())
    skey, _ = read_or_create(key_path(settings), lambda: Signer.generate(origin_of(settings)).skey())
    return Signer.from_skey(skey)


class LedgerService:
    """One node's ledger: the log, its appender loop and its checkpoint cadence."""

    def __init__(self, rt: CityBrain, signer: Signer) -> None:
        self.rt = rt
        self.signer = signer
        self.log = LedgerLog(rt.store, signer.name, signer)
        self.interval = max(rt.settings.ledger_checkpoint_ms, 10) / 1000
        self.checkpoint_times: deque[float] = deque(maxlen=10_000)  # wall time of recent checkpoints
        self.checkpoint_time = ""
        self._task: asyncio.Task[Any] | None = None
        self._sync_lock = asyncio.Lock()
        self.appending = False  # True on the process holding the `ledger` lease

    @property
    def vkey(self) -> str:
        """The public verifier key of this log."""
        return self.signer.verifier().vkey()

    async def sync(self, limit: int = PAGE) -> int:
        """Append recorded events not yet in the log (up to `limit`); return how many were appended."""
        async with self._sync_lock:  # one reader of the event table at a time: no entry appended twice
            events = await self.rt.store.events(after=self.log.last_seq, limit=limit)
            if events:
                await self.log.append([entry_of(e) for e in events], last_seq=events[-1].seq)
            return len(events)

    async def checkpoint(self) -> str:
        """Sign a checkpoint of the current log (no-op if nothing was appended since the last)."""
        before = self.log.latest_size
        note = await self.log.checkpoint(self.rt.now())
        if self.log.latest_size != before or not self.checkpoint_times:
            self.checkpoint_times.append(time.time())
            self.checkpoint_time = self.rt.now()
        return note

    async def flush(self) -> str:
        """Append every recorded event, then sign a checkpoint; return it."""
        while await self.sync() == PAGE:
            pass
        return await self.checkpoint()

    async def run(self) -> None:
        """Append continuously; sign when entries arrived and `interval` has passed since the last one."""
        last = time.monotonic()
        while True:
            try:
                n = await self.sync()
                if self.log.size > self.log.latest_size and time.monotonic() - last >= self.interval:
                    await self.checkpoint()
                    last = time.monotonic()
            except Exception:
                log.exception("ledger append failed; retrying")
                n = 0
                await asyncio.sleep(1)
            if n < PAGE:
                await asyncio.sleep(min(0.05, self.interval / 4))

    async def start(self) -> None:
        """Load the log; append on the one process holding the `ledger` lease, follow it on the others."""
        await pin_node_secret(self.rt.store, "ledger_key", self.vkey)
        await self.log.load()
        self.rt.cluster.singleton("ledger", self.append_job)
        self._task = self.rt.spawn(self.follow(), name="ledger-follower")

    async def append_job(self) -> None:
        """The appender as a singleton job: reload what the previous appender wrote, append, sign.

        When the job stops (graceful stop or a lost lease) it appends what is left and signs once more; if
        another process took over meanwhile its head version check turns our write into a Conflict, so
        nothing is appended twice."""
        self.appending = True
        try:
            await self.log.load()
            await self.run()
        finally:
            try:
                await asyncio.shield(self._final_flush())
            except Exception as exc:  # another appender is ahead of us: it has these events
                log.warning("final ledger flush skipped: %r", exc)
            self.appending = False

    async def _final_flush(self) -> None:
        """Append and sign what is left. A Conflict may only mean that the cancelled round's own write
        committed after this process last read the head: read it again and try once more (the head's
        version check still refuses a write behind another appender's)."""
        try:
            await self.flush()
        except (Conflict, AlreadyExists):
            await self.log.load()
            await self.flush()

    async def follow(self, every: float = 0.5) -> None:
        """On a process that does not append, reload the log whenever the appender moved its head."""
        from citybrain.ledger.log import STATE

        while True:
            await asyncio.sleep(every)
            if self.appending:
                continue
            try:
                head = await self.rt.store.get_doc(STATE, "head")
                if head is not None and head.version != self.log.head_version:
                    await self.log.load()
                    self.checkpoint_time = str(head.data.get("time", "")) or self.checkpoint_time
            except Exception as exc:
                log.debug("ledger follow: %r", exc)

    async def stop(self) -> None:
        """Stop following (the appender job is stopped and flushed by the cluster before this)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    def checkpoint_status(self) -> dict[str, Any]:
        """Return the latest checkpoint opened and checked: signature by the node's log key, root against the log."""
        note = self.log.latest
        out: dict[str, Any] = {"available": True, "log_size": self.log.size, "time": self.checkpoint_time or None,
                               "note": note or None, "verified": False, "size": None, "root": None, "origin": None}
        if not note:
            out["error"] = "no checkpoint has been signed yet"
            return out
        try:
            cp = open_checkpoint(note, self.signer.verifier()).checkpoint
        except Exception as exc:  # a note that does not open is reported, not hidden
            out["error"] = str(exc)
            return out
        root = base64.b64encode(cp.root).decode()
        matches = cp.size <= self.log.size and self.log.root(cp.size) == cp.root
        out.update(origin=cp.origin, size=cp.size, root=root, signature_ok=True, root_matches_log=matches,
                   verified=matches, key=self.signer.name)
        if not matches:
            out["error"] = f"root of the log at size {cp.size} differs from the checkpoint"
        return out

    async def record_access(self, ctx: Context, dataset: str, count: int, grant: str | None, **more: Any) -> None:
        """Record a data access (who, which dataset, how many records, under which grant) in the ledger."""
        data = {"actor": ctx.actor, "dataset": dataset, "count": count, "grant": grant, **more}
        await self.rt.emit("data.access", data, ctx)

    async def kpis(self, within: Any = None) -> dict[str, Any]:
        """Return the ledger's figures for the dashboard: size, latest checkpoint and its time."""
        now = time.time()
        return {"size": self.log.size, "checkpointed": self.log.latest_size, "checkpoint": self.log.latest,
                "time": self.checkpoint_time, "checkpoints_last_minute": sum(1 for t in self.checkpoint_times
                                                                             if now - t <= 60)}


class Witness(msgspec.Struct, kw_only=True):
    """A community node's signed checkpoint for the city node to verify and keep."""

    node: str
    checkpoint_note: str
    vkey: str | None = None  # the community's log key; required the first time (then pinned)
    proof: list[str] | None = None  # base64 consistency proof from the last witnessed size


async def witness(rt: CityBrain, cmd: Witness, ctx: Context) -> Outcome:
    """Verify a community checkpoint (signature, no rollback, no split view, consistency) and keep it."""
    known = await rt.store.get_doc(WITNESS_KEYS, cmd.node)
    if known and cmd.vkey and cmd.vkey != known.data["vkey"]:
        raise Conflict(f"node {cmd.node} presented a different log key than the pinned one", field="vkey")
    vkey = known.data["vkey"] if known else cmd.vkey
    if not vkey:
        raise ValidationError("vkey: the first checkpoint of a node must come with its log key", field="vkey")
    try:
        verifier = Verifier.from_vkey(vkey)
    except ValueError as exc:
        raise ValidationError(f"vkey: {exc}", field="vkey") from None
    cp = open_checkpoint(cmd.checkpoint_note, verifier).checkpoint
    head = await rt.store.get_doc(WITNESS_HEADS, cmd.node)
    consistency = "first"
    if head is not None:
        size0, root0 = int(head.data["size"]), base64.b64decode(head.data["root"])
        if cp.size < size0:
            raise Conflict(f"node {cmd.node} rolled back from size {size0} to {cp.size}", field="checkpoint_note")
        if cp.size == size0:
            if cp.root != root0:
                raise Conflict(f"node {cmd.node} shows two roots for size {cp.size} (split view)",
                               field="checkpoint_note")
            consistency = "same"
        elif cmd.proof is not None and size0 > 0:
            proof = [base64.b64decode(p) for p in cmd.proof]
            verify_consistency(size0, cp.size, root0, cp.root, proof)
            consistency = "proven"
        else:
            consistency = "proven" if size0 == 0 else "unchecked"
    root = base64.b64encode(cp.root).decode()
    record = {"node": cmd.node, "size": cp.size, "root": root, "note": cmd.checkpoint_note,
              "consistency": consistency, "time": rt.now()}
    ops: list[Op] = [PutDoc(WITNESSED, f"{cmd.node}:{cp.size:012d}", record), PutDoc(WITNESS_HEADS, cmd.node, record)]
    if known is None:
        ops.append(PutDoc(WITNESS_KEYS, cmd.node, {"vkey": vkey, "time": rt.now()}))
    return Outcome(ops=ops, result={k: v for k, v in record.items() if k != "note"}, event=record)


async def open_ledger(rt: CityBrain) -> LedgerService:
    """Return a loaded (not running) ledger service over the runtime's store."""
    service = LedgerService(rt, load_signer(rt.settings))
    await service.log.load()
    return service


async def setup(rt: CityBrain) -> None:
    """Start the ledger and register `ledger.witness`."""
    service = LedgerService(rt, load_signer(rt.settings))
    rt.ports.ledger = service
    rt.commands.register("ledger.witness", Witness, witness,
                         "verify and keep a community node's signed ledger checkpoint",
                         roles=("admin", "city_operator", "device"))
    await service.start()

"""The ledger's durable log: leaves, leaf-hash tiles and signed checkpoints kept as store documents.

Layout (collections of the node's store, so both SQLite and PostgreSQL hold it with no extra table):
`ledger_bundles` id = 9-digit bundle number, {"entries": [canonical JSON text, …]} — the entries
themselves, 256 per bundle as in Tessera (the last, partial bundle is rewritten as it fills);
`ledger_tiles`   id = 9-digit tile number, {"h": base64 of up to 256 concatenated leaf hashes};
`ledger_checkpoints` id = 12-digit tree size, {"note": signed C2SP checkpoint, "time": …};
`ledger_state`   id "head", {"size", "last_seq", "checkpoint"} — written in the same transaction as
the leaves, so a crash never leaves the log half-appended. One appender per node (the ledger
service) gives the log the store writer's total order. Leaf hashes are also kept in memory
(32 bytes per entry) for proofs; the tiles let a restart rebuild them without re-hashing entries.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
import orjson

from citybrain.events import Event
from citybrain.ledger.checkpoint import Checkpoint
from citybrain.ledger.merkle import EMPTY_ROOT, HASH_SIZE, leaf_hash
from citybrain.ledger.note import Signer, Verifier
from citybrain.ledger.tree import CompactTree, MemorySubtreeCache, TreeHasher
from citybrain.ledger.verify import VerifyReport, verify_log
from citybrain.store import Store
from citybrain.store.base import Op, PutDoc

LEAVES, TILES, CHECKPOINTS, STATE = "ledger_bundles", "ledger_tiles", "ledger_checkpoints", "ledger_state"
TILE = 256
PAGE = 5000
STRIDE = 2  # cache every second tree level (about n/3 subtree hashes in memory): proofs in ~0.5 ms


def canonical(value: Any) -> bytes:
    """Return canonical JSON bytes (sorted keys, no whitespace) of a JSON-able value."""
    return orjson.dumps(msgspec.to_builtins(value), option=orjson.OPT_SORT_KEYS)


def entry_of(event: Event) -> bytes:
    """Return the ledger entry of a recorded event: its canonical JSON, including its store seq."""
    return canonical(event)


def leaf_id(index: int) -> str:
    """Return a 12-digit zero-padded id (checkpoints are keyed by tree size) that sorts numerically."""
    return f"{index:012d}"


def bundle_id(bundle: int) -> str:
    """Return the document id of entry bundle `bundle` (entries [bundle * 256, bundle * 256 + 256))."""
    return f"{bundle:09d}"


class LedgerLog:
    """An append-only Merkle log over store documents, with in-memory leaf hashes for proofs."""

    def __init__(self, store: Store, origin: str, signer: Signer | None = None) -> None:
        self.store, self.origin, self.signer = store, origin, signer
        self.hashes = bytearray()
        self.hasher = TreeHasher(self.leaf_hashes, MemorySubtreeCache(), stride=STRIDE)
        self.tree = CompactTree(on_node=self.hasher.cache_node)  # appends fill the proof cache
        self.last_seq = 0
        self.latest: str = ""  # latest signed checkpoint note
        self.latest_size = 0
        self._tail: list[str] = []  # entries of the last, partial bundle
        self.head_version = 0  # version of the head document; a second appender fails with Conflict
        self._lock = asyncio.Lock()

    @property
    def size(self) -> int:
        """Number of entries in the log."""
        return len(self.hashes) // HASH_SIZE

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        """Return stored leaf hashes [start, end) (fewer at the end of the log)."""
        end = min(end, self.size)
        return [bytes(self.hashes[i * HASH_SIZE:(i + 1) * HASH_SIZE]) for i in range(start, end)]

    async def load(self) -> None:
        """Read the head and the leaf-hash tiles from the store and rebuild the tree."""
        head = await self.store.get_doc(STATE, "head")
        size = int(head.data["size"]) if head else 0
        self.last_seq = int(head.data.get("last_seq", 0)) if head else 0
        self.head_version = head.version if head else 0
        raw = bytearray()
        for tile in range((size + TILE - 1) // TILE):
            doc = await self.store.get_doc(TILES, f"{tile:09d}")
            if doc is None:
                raise LookupError(f"ledger tile {tile} is missing")
            raw += base64.b64decode(doc.data["h"])
        self.hashes = raw[: size * HASH_SIZE]
        if self.size != size:
            raise LookupError(f"ledger tiles hold {self.size} hashes, head says {size}")
        self.hasher = TreeHasher(self.leaf_hashes, MemorySubtreeCache(), stride=STRIDE)
        self.tree = CompactTree(on_node=self.hasher.cache_node)
        self.tree.extend(self.leaf_hashes(0, size))
        self._tail = []
        if size % TILE:
            bundle = await self.store.get_doc(LEAVES, bundle_id(size // TILE))
            self._tail = list(bundle.data["entries"][: size % TILE]) if bundle else []
            if len(self._tail) != size % TILE:
                raise LookupError(f"ledger bundle {size // TILE} is missing entries")
        self.latest = str(head.data.get("checkpoint", "")) if head else ""
        self.latest_size = int(head.data.get("checkpoint_size", 0)) if head else 0

    def _head(self, size: int, last_seq: int, note: str, note_size: int) -> PutDoc:
        data = {"size": size, "last_seq": last_seq, "checkpoint": note, "checkpoint_size": note_size}
        return PutDoc(STATE, "head", data, expect_version=self.head_version)

    async def append(self, entries: Sequence[bytes], last_seq: int | None = None) -> int:
        """Durably append entries (one transaction with the new head); return the new size."""
        if not entries:
            return self.size
        async with self._lock:
            start = self.size
            new = b"".join(leaf_hash(e) for e in entries)
            end, first, base = start + len(entries), start // TILE, start // TILE * TILE
            pending = self._tail + [e.decode() for e in entries]  # entries of the touched bundles
            ops: list[Op] = [PutDoc(LEAVES, bundle_id(b), {"entries": pending[(b - first) * TILE:(b - first + 1) * TILE]})
                             for b in range(first, (end - 1) // TILE + 1)]
            tail = bytes(self.hashes[base * HASH_SIZE:]) + new  # hashes of the touched tiles only
            for tile in range(start // TILE, (end - 1) // TILE + 1):
                lo, hi = (tile * TILE - base) * HASH_SIZE, (min(end, (tile + 1) * TILE) - base) * HASH_SIZE
                ops.append(PutDoc(TILES, f"{tile:09d}", {"h": base64.b64encode(tail[lo:hi]).decode()}))
            seq = self.last_seq if last_seq is None else last_seq
            ops.append(self._head(end, seq, self.latest, self.latest_size))
            await self.store.apply(ops)
            self.head_version += 1
            self._tail = pending[(end // TILE - first) * TILE:]
            self.hashes += new
            self.last_seq = seq
            for k in range(len(entries)):
                self.tree.append(bytes(new[k * HASH_SIZE:(k + 1) * HASH_SIZE]))
            return end

    def root(self, size: int | None = None) -> bytes:
        """Return the root of the first `size` entries (default: all)."""
        if size is None or size == self.size:
            return self.tree.root() if self.size else EMPTY_ROOT
        self._check_size(size)
        return self.hasher.root(size)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} out of range (log has {self.size} entries)")

    async def checkpoint(self, time: str = "") -> str:
        """Sign and store a checkpoint of the current size; return the signed note."""
        if self.signer is None:
            raise RuntimeError("this ledger has no signing key")
        async with self._lock:
            size = self.size
            if size == self.latest_size and self.latest:
                return self.latest
            note = Checkpoint(self.origin, size, self.root()).sign(self.signer)
            await self.store.apply([PutDoc(CHECKPOINTS, leaf_id(size), {"note": note, "time": time}),
                                    self._head(size, self.last_seq, note, size)])
            self.head_version += 1
            self.latest, self.latest_size = note, size
            return note

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Return the inclusion proof of entry `index` in the tree of `size`."""
        self._check_size(size)
        return self.hasher.inclusion_proof(index, size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """Return the consistency proof from tree size1 to size2."""
        self._check_size(size2)
        return self.hasher.consistency_proof(size1, size2)

    async def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Return stored entries [start, end) as (index, bytes)."""
        end = min(end, self.size)
        if end <= start:
            return []
        out: list[tuple[int, bytes]] = []
        for b in range(start // TILE, (end - 1) // TILE + 1):
            doc = await self.store.get_doc(LEAVES, bundle_id(b))
            texts = doc.data["entries"] if doc else []
            out += [(b * TILE + k, str(t).encode()) for k, t in enumerate(texts) if start <= b * TILE + k < end]
        return out


async def stored_entries(store: Store, page: int = PAGE) -> AsyncIterator[tuple[int, bytes]]:
    """Yield every stored entry as (index from its bundle and position, bytes), as the store holds them."""
    offset = 0
    while True:
        docs = await store.list_docs(LEAVES, limit=page, offset=offset)
        for d in docs:
            for k, text in enumerate(d.data.get("entries", [])):
                yield int(d.id) * TILE + k, str(text).encode()
        if len(docs) < page:
            return
        offset += len(docs)


async def stored_checkpoints(store: Store) -> list[str]:
    """Return every stored signed checkpoint note, smallest tree first."""
    notes: list[str] = []
    offset = 0
    while True:
        docs = await store.list_docs(CHECKPOINTS, limit=PAGE, offset=offset)
        notes += [str(d.data["note"]) for d in docs]
        if len(docs) < PAGE:
            return notes
        offset += len(docs)


async def stored_hashes(store: Store) -> bytes:
    """Return the concatenated stored leaf hashes from the tiles (stops at the first missing tile)."""
    out = bytearray()
    offset = 0
    while True:
        docs = await store.list_docs(TILES, limit=PAGE, offset=offset)
        for d in docs:
            if int(d.id) * TILE * HASH_SIZE != len(out):
                return bytes(out)
            out += base64.b64decode(d.data["h"])
        if len(docs) < PAGE:
            return bytes(out)
        offset += len(docs)


async def verify_store(store: Store, log_key: Verifier, origin: str | None = None) -> VerifyReport:
    """Re-check every stored entry against every stored signed checkpoint; name the first bad entry."""
    entries = [e async for e in stored_entries(store)]
    notes = await stored_checkpoints(store)
    hashes = await stored_hashes(store)
    count = len(hashes) // HASH_SIZE

    def getter(start: int, end: int) -> Sequence[bytes]:
        """Return the stored (tile) leaf hashes [start, end)."""
        return [hashes[i * HASH_SIZE:(i + 1) * HASH_SIZE] for i in range(start, min(end, count))]

    return verify_log(entries, notes, log_key, origin=origin, leaf_hashes=getter)

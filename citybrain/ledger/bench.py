"""Micro-benchmarks for the ledger core (store integration comes later).

Run: `python -m citybrain.ledger.bench [leaves]`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from citybrain.ledger.checkpoint import Checkpoint
from citybrain.ledger.merkle import leaf_hash, verify_inclusion
from citybrain.ledger.tree import CompactTree, MemorySubtreeCache, TreeHasher, sequence_getter
from citybrain.ledger.verify import verify_entries


@dataclass(frozen=True)
class BenchResult:
    """Timings of incremental appends and of inclusion proofs over the resulting tree."""

    leaves: int
    appends_per_s: float
    cached_subtrees: int
    proof_ms: float
    proof_len: int
    verify_ms: float


def bench_appends(n: int = 100_000) -> float:
    """Return appends/s of hashing n entries into an incremental Merkle tree (leaf hash + border update)."""
    tree = CompactTree()
    entries = [i.to_bytes(8, "big") * 8 for i in range(n)]
    t0 = time.perf_counter()
    for e in entries:
        tree.append(leaf_hash(e))
    tree.root()
    return n / (time.perf_counter() - t0)


def bench_inclusion(n: int = 1_000_000, proofs: int = 100, stride: int = 8) -> BenchResult:
    """Build an n-leaf tree incrementally with a subtree cache, then time inclusion proof generation."""
    hashes: list[bytes] = []
    cache = MemorySubtreeCache()
    hasher = TreeHasher(sequence_getter(hashes), cache, stride=stride)
    tree = CompactTree(on_node=hasher.cache_node)
    t0 = time.perf_counter()
    for i in range(n):
        h = leaf_hash(i.to_bytes(8, "big"))
        hashes.append(h)
        tree.append(h)
    appends_per_s = n / (time.perf_counter() - t0)
    root = tree.root()
    step = max(1, n // proofs)
    indices = list(range(0, n, step))[:proofs]
    t0 = time.perf_counter()
    made = [hasher.inclusion_proof(i, n) for i in indices]
    proof_ms = (time.perf_counter() - t0) * 1000 / len(indices)
    t0 = time.perf_counter()
    for i, p in zip(indices, made, strict=True):
        verify_inclusion(i, n, hashes[i], p, root)
    verify_ms = (time.perf_counter() - t0) * 1000 / len(indices)
    return BenchResult(n, appends_per_s, len(cache), proof_ms, len(made[0]), verify_ms)


def bench_verify(n: int = 100_000, checkpoint_every: int = 1000) -> float:
    """Return entries/s of verify_entries over n entries with a checkpoint every `checkpoint_every` entries."""
    entries = [i.to_bytes(8, "big") * 8 for i in range(n)]
    tree, cps = CompactTree(), []
    for e in entries:
        tree.append(leaf_hash(e))
        if tree.size % checkpoint_every == 0 or tree.size == n:
            cps.append(Checkpoint("bench", tree.size, tree.root()))
    t0 = time.perf_counter()
    report = verify_entries(enumerate(entries), cps)
    elapsed = time.perf_counter() - t0
    assert report.ok, report.summary()
    return n / elapsed


def main(argv: list[str]) -> None:
    """Print both benchmarks."""
    n = int(argv[1]) if len(argv) > 1 else 1_000_000
    print(f"incremental appends: {bench_appends(min(n, 200_000)):,.0f}/s")
    print(f"verify_entries: {bench_verify(min(n, 200_000)):,.0f} entries/s")
    r = bench_inclusion(n)
    print(
        f"{r.leaves:,} leaves built at {r.appends_per_s:,.0f} appends/s with {r.cached_subtrees:,} cached "
        f"subtrees; inclusion proof {r.proof_ms:.3f} ms ({r.proof_len} hashes), verify {r.verify_ms:.3f} ms"
    )


if __name__ == "__main__":
    main(sys.argv)

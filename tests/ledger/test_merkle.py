"""Merkle tree properties: roots vs a naive RFC 6962 MTH, proofs for every (index, size) up to 48 leaves
with and without subtree caches (strides 1, 2, 3, 8), every single-bit proof mutation rejected on small
trees, CompactTree node reporting, and a cache-backed proof on a larger tree reading few leaves.
"""

from __future__ import annotations

import os

import pytest

from citybrain.ledger.bench import bench_appends, bench_inclusion, bench_verify
from citybrain.ledger.errors import ProofError
from citybrain.ledger.merkle import (
    EMPTY_ROOT,
    is_valid_consistency,
    is_valid_inclusion,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    split_point,
    verify_consistency,
    verify_inclusion,
)
from citybrain.ledger.tree import CompactTree, MemorySubtreeCache, TreeHasher, sequence_getter

N = 48
HASHES = [leaf_hash(i.to_bytes(4, "big")) for i in range(N)]


def naive_mth(hs: list[bytes]) -> bytes:
    if not hs:
        return EMPTY_ROOT
    if len(hs) == 1:
        return hs[0]
    k = split_point(len(hs))
    return node_hash(naive_mth(hs[:k]), naive_mth(hs[k:]))


def _hasher(stride: int | None) -> TreeHasher:
    if stride is None:
        return TreeHasher(sequence_getter(HASHES))
    hasher = TreeHasher(sequence_getter(HASHES), MemorySubtreeCache(), stride=stride)
    return hasher


def test_roots_match_naive() -> None:
    tree = CompactTree()
    for n in range(N + 1):
        want = naive_mth(HASHES[:n])
        assert root_from_leaf_hashes(HASHES[:n]) == want
        assert tree.root() == want
        assert _hasher(None).root(n) == want
        if n < N:
            tree.append(HASHES[n])


@pytest.mark.parametrize("stride", [None, 1, 2, 3, 8])
def test_all_proofs_verify(stride: int | None) -> None:
    hasher = _hasher(stride)
    roots = [naive_mth(HASHES[:n]) for n in range(N + 1)]
    for n in range(1, N + 1):
        for i in range(n):
            verify_inclusion(i, n, HASHES[i], hasher.inclusion_proof(i, n), roots[n])
        for m in range(1, n + 1):
            verify_consistency(m, n, roots[m], roots[n], hasher.consistency_proof(m, n))


def test_every_bit_flip_and_shape_change_rejected() -> None:
    hasher = _hasher(None)
    for n in range(1, 12):
        root = naive_mth(HASHES[:n])
        for i in range(n):
            proof = hasher.inclusion_proof(i, n)
            for k in range(len(proof)):
                for bit in range(0, 256, 17):
                    bad = list(proof)
                    bad[k] = (int.from_bytes(bad[k], "big") ^ (1 << bit)).to_bytes(32, "big")
                    assert not is_valid_inclusion(i, n, HASHES[i], bad, root)
            assert not is_valid_inclusion(i, n, HASHES[i], [*proof, HASHES[0]], root)
            if proof:
                assert not is_valid_inclusion(i, n, HASHES[i], proof[:-1], root)
            if n > 1:
                assert not is_valid_inclusion((i + 1) % n, n, HASHES[i], proof, root)
        for m in range(1, n):
            proof = hasher.consistency_proof(m, n)
            r1 = naive_mth(HASHES[:m])
            assert is_valid_consistency(m, n, r1, root, proof)
            for k in range(len(proof)):
                bad = list(proof)
                bad[k] = bytes([bad[k][0] ^ 1]) + bad[k][1:]
                assert not is_valid_consistency(m, n, r1, root, bad)
            assert not is_valid_consistency(m, n, r1, root, proof[:-1])
            assert not is_valid_consistency(m, n, root, r1, proof)


def test_bad_inputs() -> None:
    with pytest.raises(ProofError):
        verify_inclusion(0, 1, b"short", [], HASHES[0])
    with pytest.raises(ProofError):
        verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(ValueError):
        _hasher(None).inclusion_proof(3, 3)
    with pytest.raises(ValueError):
        _hasher(None).consistency_proof(0, 3)
    assert _hasher(None).consistency_proof(5, 5) == []


def test_compact_tree_reports_complete_subtrees() -> None:
    hasher = TreeHasher(sequence_getter(HASHES), MemorySubtreeCache(), stride=1)
    seen: dict[tuple[int, int], bytes] = {}
    tree = CompactTree(on_node=lambda lv, ix, h: seen.__setitem__((lv, ix), h))
    tree.extend(HASHES[:32])
    assert len(seen) == 31
    for (level, index), h in seen.items():
        assert h == naive_mth(HASHES[index << level : (index + 1) << level])
        assert hasher.subtree(level, index) == h


def test_cached_proof_reads_few_leaves() -> None:
    n = 1 << 14
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    reads: list[int] = []

    def get(start: int, end: int) -> list[bytes]:
        reads.append(end - start)
        return hashes[start:end]

    hasher = TreeHasher(get, MemorySubtreeCache(), stride=8)
    tree = CompactTree(on_node=hasher.cache_node)
    tree.extend(hashes)
    proof = hasher.inclusion_proof(12345, n)
    verify_inclusion(12345, n, hashes[12345], proof, tree.root())
    assert sum(reads) <= 256


def test_bench_small() -> None:
    assert bench_appends(2000) > 0 and bench_verify(3000, 100) > 0
    r = bench_inclusion(5000, proofs=10)
    assert r.proof_len == 13 and r.cached_subtrees > 0


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("CITYBRAIN_SLOW"), reason="set CITYBRAIN_SLOW=1 for the 1M-leaf benchmark"
)
def test_bench_million_leaves() -> None:
    r = bench_inclusion(1_000_000, proofs=100)
    assert r.proof_len == 20 and r.proof_ms < 50, r

"""Merkle tree building and proof generation over stored leaf hashes.

`CompactTree` appends leaf hashes incrementally in O(log n) memory and reports every complete
subtree it finishes, so a store can persist them. `TreeHasher` produces roots and RFC 9162
inclusion (§2.1.3.1) and consistency (§2.1.4.1) proofs from a `get_leaf_hashes(start, end)`
callable; complete subtrees whose level is a multiple of `stride` (tlog-tiles style, default 8)
are looked up in / stored to an optional `SubtreeCache`, so a proof on a 1,000,000-leaf tree
needs only a few hundred hashes instead of re-reading every leaf.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from citybrain.ledger.merkle import EMPTY_ROOT, fold_right_border, node_hash, split_point

LeafHashGetter = Callable[[int, int], Sequence[bytes]]
NodeCallback = Callable[[int, int, bytes], None]


class SubtreeCache(Protocol):
    """Storage for complete-subtree hashes keyed by (level, index); level 0 is a leaf."""

    def get(self, level: int, index: int) -> bytes | None:
        """Return the cached hash of subtree (level, index), or None."""
        ...

    def put(self, level: int, index: int, value: bytes) -> None:
        """Remember the hash of subtree (level, index)."""
        ...


class MemorySubtreeCache:
    """A dict-backed SubtreeCache (a store can provide a persistent one with the same two methods)."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}

    def get(self, level: int, index: int) -> bytes | None:
        """Return the cached hash of subtree (level, index), or None."""
        return self.nodes.get((level, index))

    def put(self, level: int, index: int, value: bytes) -> None:
        """Remember the hash of subtree (level, index)."""
        self.nodes[(level, index)] = value

    def __len__(self) -> int:
        return len(self.nodes)


def _fold_pow2(hashes: Sequence[bytes]) -> bytes:
    """Hash a power-of-two-long list of sibling subtree hashes into their parent."""
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


class CompactTree:
    """An append-only Merkle tree keeping only the right border: O(log n) memory, amortised O(1) hashes."""

    def __init__(self, on_node: NodeCallback | None = None) -> None:
        self.size = 0
        self.border: list[bytes] = []
        self.on_node = on_node

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash, reporting each newly completed subtree (level >= 1) to on_node."""
        n, h, level = self.size, leaf, 0
        while n & 1:
            h = node_hash(self.border.pop(), h)
            n >>= 1
            level += 1
            if self.on_node is not None:
                self.on_node(level, self.size >> level, h)
        self.border.append(h)
        self.size += 1

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Append several leaf hashes."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """Return the current tree root (MTH)."""
        return fold_right_border(self.border)


class TreeHasher:
    """Roots and proofs for a log whose leaf hashes come from `get_leaf_hashes(start, end)`."""

    def __init__(
        self, get_leaf_hashes: LeafHashGetter, cache: SubtreeCache | None = None, stride: int = 8
    ) -> None:
        if stride < 1:
            raise ValueError("stride must be >= 1")
        self.get_leaf_hashes = get_leaf_hashes
        self.cache = cache
        self.stride = stride

    def cache_node(self, level: int, index: int, value: bytes) -> None:
        """A CompactTree.on_node callback: store the subtree if its level is a cached one."""
        if self.cache is not None and level % self.stride == 0:
            self.cache.put(level, index, value)

    def _leaves(self, start: int, end: int) -> Sequence[bytes]:
        got = self.get_leaf_hashes(start, end)
        if len(got) != end - start:
            raise LookupError(f"leaf hashes [{start}, {end}) unavailable: got {len(got)}")
        return got

    def subtree(self, level: int, index: int) -> bytes:
        """Return the hash of the complete subtree covering leaves [index << level, (index + 1) << level)."""
        if level == 0:
            return self._leaves(index, index + 1)[0]
        cached = self.cache is not None and level % self.stride == 0
        if cached:
            assert self.cache is not None
            hit = self.cache.get(level, index)
            if hit is not None:
                return hit
        base = 0 if self.cache is None else level - (level % self.stride or self.stride)
        width = 1 << (level - base)
        if base == 0:
            kids: Sequence[bytes] = self._leaves(index * width, index * width + width)
        else:
            kids = [self.subtree(base, index * width + j) for j in range(width)]
        h = _fold_pow2(kids)
        if cached:
            assert self.cache is not None
            self.cache.put(level, index, h)
        return h

    def range_hash(self, start: int, end: int) -> bytes:
        """Return MTH(D[start:end]) for a range that is a subtree of some RFC 6962 tree."""
        n = end - start
        if n <= 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            return self.subtree(n.bit_length() - 1, start // n)
        k = split_point(n)
        return node_hash(self.range_hash(start, start + k), self.range_hash(start + k, end))

    def root(self, size: int) -> bytes:
        """Return the root of the first `size` leaves."""
        return self.range_hash(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Return PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), leaf-side first."""
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} out of range for tree size {size}")
        path: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = split_point(hi - lo)
            if index < lo + k:
                path.append(self.range_hash(lo + k, hi))
                hi = lo + k
            else:
                path.append(self.range_hash(lo, lo + k))
                lo += k
        path.reverse()
        return path

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """Return PROOF(size1, D[0:size2]) (RFC 9162 §2.1.4.1); empty when size1 == size2."""
        if not 0 < size1 <= size2:
            raise ValueError(f"need 0 < size1 <= size2, got {size1}, {size2}")
        path: list[bytes] = []
        lo, hi, m, complete = 0, size2, size1, True
        while m != hi - lo:
            k = split_point(hi - lo)
            if m <= k:
                path.append(self.range_hash(lo + k, hi))
                hi = lo + k
            else:
                path.append(self.range_hash(lo, lo + k))
                lo, m, complete = lo + k, m - k, False
        if not complete:
            path.append(self.range_hash(lo, hi))
        path.reverse()
        return path


def sequence_getter(hashes: Sequence[bytes]) -> LeafHashGetter:
    """Return a get_leaf_hashes callable over an in-memory sequence of leaf hashes."""

    def get(start: int, end: int) -> Sequence[bytes]:
        """Return leaf hashes [start, end) (fewer at the end of the log)."""
        return hashes[start:end]

    return get

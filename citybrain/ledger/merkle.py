"""RFC 9162 (RFC 6962) Merkle tree hashing, and inclusion/consistency proof verification.

leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right), MTH({}) = SHA-256("").
Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 plus the two strictness rules fixed by the
transparency-dev vectors: hashes must be exactly 32 bytes, and a consistency proof from size 0 is
always an error. Proof *generation* over stored leaves lives in `citybrain.ledger.tree`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from citybrain.ledger.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 leaf hash SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """Return the largest power of two strictly less than n (n >= 2)."""
    if n < 2:
        raise ValueError(f"split_point needs n >= 2, got {n}")
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Return MTH over the given leaf hashes (iteratively, O(log n) extra memory)."""
    stack: list[bytes] = []
    for size, h in enumerate(hashes):
        while size & 1:
            h = node_hash(stack.pop(), h)
            size >>= 1
        stack.append(h)
    return fold_right_border(stack)


def fold_right_border(border: Sequence[bytes]) -> bytes:
    """Fold the complete-subtree hashes of a tree's border (largest first) into its root."""
    if not border:
        return EMPTY_ROOT
    root = border[-1]
    for h in reversed(border[:-1]):
        root = node_hash(h, root)
    return root


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """Return MTH over raw leaf inputs."""
    return root_from_leaf_hashes([leaf_hash(d) for d in leaves])


def _check_hash(what: str, h: bytes) -> None:
    if len(h) != HASH_SIZE:
        raise ProofError(f"{what} is {len(h)} bytes, want {HASH_SIZE}", field=what)


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Return the root implied by an inclusion proof (RFC 9162 §2.1.3.2), raising ProofError if malformed."""
    if index < 0 or index >= size:
        raise ProofError(f"leaf index {index} out of range for tree size {size}")
    _check_hash("leaf_hash", leaf)
    fn, sn, r = index, size - 1, leaf
    for i, p in enumerate(proof):
        _check_hash(f"proof[{i}]", p)
        if sn == 0:
            raise ProofError(f"inclusion proof too long: {len(proof)} hashes")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof too short: {len(proof)} hashes")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check that leaf hash `leaf` sits at `index` of the tree of `size` with `root`; raise ProofError if not."""
    _check_hash("root", root)
    got = root_from_inclusion_proof(index, size, leaf, proof)
    if got != root:
        raise ProofError(f"inclusion proof for leaf {index} of {size} gives a different root")


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree (size1, root1) is a prefix of (size2, root2) per RFC 9162 §2.1.4.2; raise if not."""
    if size1 <= 0:
        raise ProofError("consistency proof from an empty tree is meaningless", field="size1")
    if size2 < size1:
        raise ProofError(f"size2 {size2} < size1 {size1}", field="size2")
    if size1 == size2:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty", field="proof")
        if root1 != root2:
            raise ProofError("equal sizes but different roots", field="root2")
        return
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    if not proof:
        raise ProofError("empty consistency proof", field="proof")
    for i, p in enumerate(proof):
        _check_hash(f"proof[{i}]", p)
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof too long: {len(proof)} hashes")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof too short: {len(proof)} hashes")
    if fr != root1:
        raise ProofError(f"consistency proof does not match the root of size {size1}", field="root1")
    if sr != root2:
        raise ProofError(f"consistency proof does not match the root of size {size2}", field="root2")


def is_valid_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """Return True iff the inclusion proof verifies."""
    try:
        verify_inclusion(index, size, leaf, proof, root)
    except ProofError:
        return False
    return True


def is_valid_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> bool:
    """Return True iff the consistency proof verifies."""
    try:
        verify_consistency(size1, size2, root1, root2, proof)
    except ProofError:
        return False
    return True

"""Verify a stream of ledger entries against signed checkpoints and name the FIRST bad entry.

Entries arrive as an iterator of (index, entry_bytes) in index order; each becomes the leaf
SHA-256(0x00 || entry). The running root is compared with every checkpoint as the stream passes its
size. A checkpoint pins the first bad entry to the range since the previous matching checkpoint;
the index is exact when that range holds one entry (e.g. a checkpoint per append) or when the
store's own leaf hashes are supplied (`leaf_hashes`) and themselves reproduce the checkpoint root,
which proves them authentic, so the first entry whose hash differs from them is the bad one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from citybrain.ledger.checkpoint import Checkpoint, open_checkpoint
from citybrain.ledger.errors import LedgerError
from citybrain.ledger.merkle import EMPTY_ROOT, leaf_hash
from citybrain.ledger.note import Verifier
from citybrain.ledger.tree import CompactTree, LeafHashGetter


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of verifying a ledger: `first_bad` is None when everything checked out."""

    ok: bool
    entries: int
    verified_size: int
    checkpoints: int
    first_bad: int | None = None
    exact: bool = True
    bad_range: tuple[int, int] | None = None
    reason: str = ""

    @property
    def unverified_tail(self) -> int:
        """Entries after the largest matching checkpoint (not yet committed to by a signature)."""
        return self.entries - self.verified_size

    def summary(self) -> str:
        """Return a one-line human-readable summary."""
        if self.ok:
            return (
                f"OK: {self.entries} entries, {self.verified_size} proven by {self.checkpoints} "
                f"checkpoint(s), {self.unverified_tail} not yet checkpointed"
            )
        where = "" if self.first_bad is None else f" first bad entry {self.first_bad}"
        if self.first_bad is not None and not self.exact and self.bad_range is not None:
            where += f" (somewhere in [{self.bad_range[0]}, {self.bad_range[1]}))"
        return f"FAIL:{where}: {self.reason}"


class _StoredHashes:
    """Streams the store's leaf hashes in batches; goes quiet if they run out."""

    def __init__(self, get: LeafHashGetter | None, batch: int) -> None:
        self.get, self.batch = get, batch
        self.buf: Sequence[bytes] = ()
        self.start = 0
        self.tree = CompactTree()

    def next(self, index: int) -> bytes | None:
        """Return the stored leaf hash at `index` (feeding the stored tree), or None if unavailable."""
        if self.get is None:
            return None
        if not self.start <= index < self.start + len(self.buf):
            try:
                self.start, self.buf = index, self.get(index, index + self.batch)
            except LookupError:
                self.buf = ()
            if not self.buf:
                self.get = None
                return None
        h = self.buf[index - self.start]
        self.tree.append(h)
        return h

    def authentic(self, cp: Checkpoint) -> bool:
        """Return True if the stored leaf hashes seen so far reproduce the checkpoint's root."""
        return self.get is not None and self.tree.size == cp.size and self.tree.root() == cp.root


def _prepare(checkpoints: Iterable[Checkpoint]) -> tuple[list[Checkpoint], str]:
    by_size: dict[int, Checkpoint] = {}
    for cp in checkpoints:
        seen = by_size.setdefault(cp.size, cp)
        if seen.root != cp.root:
            return [], f"two checkpoints of size {cp.size} disagree on the root (split view)"
    if 0 in by_size and by_size[0].root != EMPTY_ROOT:
        return [], "checkpoint of size 0 has a root other than the empty tree's"
    return [by_size[s] for s in sorted(by_size) if s > 0], ""


def verify_entries(
    entries: Iterable[tuple[int, bytes]],
    checkpoints: Iterable[Checkpoint],
    *,
    leaf_hashes: LeafHashGetter | None = None,
    batch: int = 4096,
) -> VerifyReport:
    """Check entries (index order, from 0) against checkpoints; stop at and report the first bad entry."""
    cps, conflict = _prepare(checkpoints)
    if conflict:
        return VerifyReport(False, 0, 0, 0, reason=conflict)
    tree, stored = CompactTree(), _StoredHashes(leaf_hashes, batch)
    ci = prev = 0
    first_diff: int | None = None
    for index, data in entries:
        n = tree.size
        if index != n:
            why = (
                f"entry {n} is missing (next entry has index {index})"
                if index > n
                else f"entry index {index} out of order or repeated at position {n}"
            )
            return VerifyReport(False, n, prev, ci, n, True, (n, n + 1), why)
        lh = leaf_hash(data)
        if stored.next(n) not in (None, lh) and first_diff is None:
            first_diff = n
        tree.append(lh)
        while ci < len(cps) and cps[ci].size == tree.size:
            if tree.root() != cps[ci].root:
                return _segment_failure(tree.size, prev, ci, cps[ci], stored, first_diff)
            prev, ci, first_diff = tree.size, ci + 1, None
    if ci < len(cps):
        cp, n = cps[ci], tree.size
        for i in range(n, cp.size):
            if stored.next(i) is None:
                break
        why = f"log truncated: {n} entries but a checkpoint commits to {cp.size}"
        if stored.authentic(cp) and first_diff is not None:
            return VerifyReport(
                False,
                n,
                prev,
                ci,
                first_diff,
                True,
                (prev, cp.size),
                f"entry {first_diff} does not match the checkpointed leaf hash; {why}",
            )
        exact = prev == n or stored.authentic(cp)
        return VerifyReport(False, n, prev, ci, n if exact else prev, exact, (prev, cp.size), why)
    return VerifyReport(True, tree.size, prev, ci)


def _segment_failure(
    n: int, prev: int, ci: int, cp: Checkpoint, stored: _StoredHashes, first_diff: int | None
) -> VerifyReport:
    why = f"root of the first {cp.size} entries does not match the checkpoint"
    if stored.authentic(cp) and first_diff is not None:
        return VerifyReport(
            False,
            n,
            prev,
            ci,
            first_diff,
            True,
            (prev, cp.size),
            f"entry {first_diff} does not match its checkpointed leaf hash; {why}",
        )
    if first_diff is not None:
        why += f"; stored leaf hashes are also altered (first differs at {first_diff})"
    exact = cp.size - prev == 1
    return VerifyReport(False, n, prev, ci, prev, exact, (prev, cp.size), why)


def open_checkpoints(
    notes: Iterable[bytes | str], log_key: Verifier, *, origin: str | None = None
) -> list[Checkpoint]:
    """Verify each signed checkpoint note with the log key (and origin) and return the checkpoints."""
    return [open_checkpoint(n, log_key, origin=origin).checkpoint for n in notes]


def verify_log(
    entries: Iterable[tuple[int, bytes]],
    signed_checkpoints: Iterable[bytes | str],
    log_key: Verifier,
    *,
    origin: str | None = None,
    leaf_hashes: LeafHashGetter | None = None,
) -> VerifyReport:
    """Verify signed checkpoint notes, then the entries against them; bad signatures fail the report."""
    cps: list[Checkpoint] = []
    for k, note in enumerate(signed_checkpoints):
        try:
            cps.append(open_checkpoint(note, log_key, origin=origin).checkpoint)
        except LedgerError as exc:
            return VerifyReport(False, 0, 0, 0, reason=f"checkpoint #{k}: {exc.detail}")
    return verify_entries(entries, cps, leaf_hashes=leaf_hashes)

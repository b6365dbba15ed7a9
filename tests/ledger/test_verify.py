"""Ledger verification names the first bad entry.

- Tessera test log (15 entries, 16 signed checkpoints): clean log verifies; flipping every bit-0 of every
  byte of every entry (71 cases), dropping each entry (15), and swapping each adjacent and distant pair
  (105 pairs) fail at exactly the first bad index.
- A generated 200-entry log with sparse checkpoints: with the store's leaf hashes every byte flip / drop /
  reorder is pinned exactly; without them the report gives the first unprovable entry and the range.
- Index gaps, repeats, truncation, split-view checkpoints and bad signatures are reported.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.ledger.checkpoint import Checkpoint
from citybrain.ledger.merkle import leaf_hash, root_from_leaf_hashes
from citybrain.ledger.note import Signer, Verifier
from citybrain.ledger.tree import sequence_getter
from citybrain.ledger.verify import VerifyReport, open_checkpoints, verify_entries, verify_log

TESSERA = Path("/work/shared/tlog-vectors/tessera-log")
TESSERA_VKEY = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx"
ORIGIN = "example.com/log/testdata"


def _tessera() -> tuple[list[bytes], list[bytes]]:
    raw, entries = (TESSERA / "tile/entries/000.p/15").read_bytes(), []
    while raw:
        (n,) = struct.unpack(">H", raw[:2])
        entries.append(raw[2 : 2 + n])
        raw = raw[2 + n :]
    notes = [(TESSERA / f"checkpoint.{n}").read_bytes() for n in range(16)]
    return entries, notes


def _stream(entries: list[bytes]) -> Iterator[tuple[int, bytes]]:
    return iter(enumerate(entries))


_DENSE: list[Checkpoint] = []


def _dense_check(entries: list[bytes]) -> VerifyReport:
    if not _DENSE:
        _DENSE.extend(open_checkpoints(_tessera()[1], Verifier.from_vkey(TESSERA_VKEY), origin=ORIGIN))
    return verify_entries(_stream(entries), _DENSE)


needs_tessera = pytest.mark.skipif(not TESSERA.is_dir(), reason="tlog vectors not available")


@needs_tessera
def test_tessera_clean() -> None:
    entries, notes = _tessera()
    report = verify_log(_stream(entries), notes, Verifier.from_vkey(TESSERA_VKEY), origin=ORIGIN)
    assert report.ok and report.verified_size == 15 and report.checkpoints == 15, report.summary()


@needs_tessera
def test_tessera_every_byte_flip() -> None:
    entries, _ = _tessera()
    cases = 0
    for i, e in enumerate(entries):
        for k in range(len(e)):
            bad = list(entries)
            bad[i] = e[:k] + bytes([e[k] ^ 1]) + e[k + 1 :]
            r = _dense_check(bad)
            assert not r.ok and r.first_bad == i and r.exact, r.summary()
            cases += 1
    assert cases == 69


@needs_tessera
def test_tessera_drop_and_reorder() -> None:
    entries, _ = _tessera()
    for i in range(15):
        r = _dense_check(entries[:i] + entries[i + 1 :])
        assert not r.ok and r.first_bad == i and r.exact, r.summary()
    for i, j in itertools.combinations(range(15), 2):
        bad = list(entries)
        bad[i], bad[j] = bad[j], bad[i]
        r = _dense_check(bad)
        assert not r.ok and r.first_bad == i and r.exact, r.summary()


@needs_tessera
def test_tessera_bad_signature_and_wrong_origin() -> None:
    entries, notes = _tessera()
    notes[5] = notes[5].replace(b"\n5\n", b"\n6\n")
    r = verify_log(_stream(entries), notes, Verifier.from_vkey(TESSERA_VKEY))
    assert not r.ok and r.first_bad is None and "checkpoint #5" in r.reason
    _, notes = _tessera()
    r = verify_log(_stream(entries), notes, Verifier.from_vkey(TESSERA_VKEY), origin="other")
    assert not r.ok and "origin" in r.reason


# A generated log with checkpoints only every 32 entries.
KEY = Signer.generate("citybrain.test/ledger")
LOG = [f"event {i} payload {'x' * (i % 7)}".encode() for i in range(200)]
HASHES = [leaf_hash(e) for e in LOG]
SPARSE = [
    Checkpoint("citybrain.test/ledger", n, root_from_leaf_hashes(HASHES[:n])) for n in (0, 32, 64, 150, 200)
]


def _sparse(entries: list[bytes], stored: list[bytes] | None = HASHES) -> VerifyReport:
    getter = None if stored is None else sequence_getter(stored)
    return verify_entries(_stream(entries), SPARSE, leaf_hashes=getter, batch=50)


def test_sparse_clean_and_signed() -> None:
    assert _sparse(LOG).ok and _sparse(LOG, None).ok
    notes = [cp.sign(KEY) for cp in SPARSE]
    cps = open_checkpoints(notes, KEY.verifier(), origin="citybrain.test/ledger")
    r = verify_entries(_stream(LOG + [b"pending"]), cps)
    assert r.ok and r.verified_size == 200 and r.unverified_tail == 1


@pytest.mark.parametrize("i", [0, 1, 31, 32, 33, 100, 149, 150, 199])
def test_sparse_flip_drop_reorder_with_stored_hashes(i: int) -> None:
    e = LOG[i]
    for k in range(len(e)):
        bad = list(LOG)
        bad[i] = e[:k] + bytes([e[k] ^ 0x80]) + e[k + 1 :]
        r = _sparse(bad)
        assert not r.ok and r.first_bad == i and r.exact, r.summary()
    r = _sparse(LOG[:i] + LOG[i + 1 :])
    assert not r.ok and r.first_bad == i and r.exact, r.summary()
    for j in (i + 1, 199):
        if j < 200 and j != i:
            bad = list(LOG)
            bad[i], bad[j] = bad[j], bad[i]
            r = _sparse(bad)
            assert not r.ok and r.first_bad == i and r.exact, r.summary()


def test_sparse_without_stored_hashes_gives_range() -> None:
    bad = list(LOG)
    bad[40] = b"tampered"
    r = _sparse(bad, None)
    assert not r.ok and not r.exact and r.first_bad == 32 and r.bad_range == (32, 64), r.summary()
    assert "[32, 64)" in r.summary()


def test_stored_hashes_rewritten_too() -> None:
    bad, stored = list(LOG), list(HASHES)
    bad[40] = b"tampered"
    stored[40] = leaf_hash(b"tampered")
    r = _sparse(bad, stored)
    assert not r.ok and r.first_bad == 32 and r.bad_range == (32, 64) and not r.exact


def test_corrupt_stored_hash_alone_is_harmless() -> None:
    stored = list(HASHES)
    stored[10] = b"\x00" * 32
    assert _sparse(LOG, stored).ok


def test_index_gap_and_repeat() -> None:
    gap = [(i, e) for i, e in enumerate(LOG) if i != 70]
    r = verify_entries(iter(gap), SPARSE)
    assert not r.ok and r.first_bad == 70 and r.exact and "missing" in r.reason
    rep = [(i, e) for i, e in enumerate(LOG[:90])] + [(89, LOG[89])]
    r = verify_entries(iter(rep), SPARSE)
    assert not r.ok and r.first_bad == 90 and "out of order" in r.reason


def test_truncation() -> None:
    r = _sparse(LOG[:170])
    assert not r.ok and r.first_bad == 170 and r.exact and "truncated" in r.reason
    r = _sparse(LOG[:170], None)
    assert not r.ok and r.first_bad == 150 and not r.exact and r.bad_range == (150, 200)
    bad = LOG[:170]
    bad[160] = b"tampered"
    r = _sparse(bad)
    assert not r.ok and r.first_bad == 160 and r.exact


def test_split_view_checkpoints() -> None:
    other = Checkpoint("citybrain.test/ledger", 64, HASHES[0])
    r = verify_entries(_stream(LOG), [*SPARSE, other])
    assert not r.ok and r.first_bad is None and "disagree" in r.reason
    r = verify_entries(_stream(LOG), [Checkpoint("x", 0, HASHES[0])])
    assert not r.ok and "size 0" in r.reason


def test_empty_log() -> None:
    assert verify_entries(iter([]), []).ok
    assert verify_entries(iter([]), SPARSE[:1]).ok
    r = verify_entries(iter([]), SPARSE)
    assert not r.ok and r.first_bad == 0

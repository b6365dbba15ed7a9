"""The tamper-evident ledger's cryptographic core: RFC 9162 Merkle trees, C2SP signed notes and checkpoints."""

from __future__ import annotations

from citybrain.ledger.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint, parse_checkpoint_body
from citybrain.ledger.errors import (
    CheckpointError,
    InvalidSignatureError,
    LedgerError,
    MalformedNoteError,
    NoteError,
    ProofError,
    UnverifiedNoteError,
)
from citybrain.ledger.merkle import (
    EMPTY_ROOT,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from citybrain.ledger.note import Note, Signature, Signer, Verifier, open_note, parse_note, sign_note
from citybrain.ledger.tree import CompactTree, MemorySubtreeCache, SubtreeCache, TreeHasher
from citybrain.ledger.verify import VerifyReport, open_checkpoints, verify_entries, verify_log

__all__ = [
    "EMPTY_ROOT",
    "Checkpoint",
    "CheckpointError",
    "CompactTree",
    "InvalidSignatureError",
    "LedgerError",
    "MalformedNoteError",
    "MemorySubtreeCache",
    "Note",
    "NoteError",
    "ProofError",
    "Signature",
    "SignedCheckpoint",
    "Signer",
    "SubtreeCache",
    "TreeHasher",
    "UnverifiedNoteError",
    "Verifier",
    "VerifyReport",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "open_checkpoints",
    "open_note",
    "parse_checkpoint_body",
    "parse_note",
    "root_from_leaf_hashes",
    "sign_note",
    "verify_consistency",
    "verify_entries",
    "verify_inclusion",
    "verify_log",
]

"""Errors raised by the tamper-evident ledger's cryptographic core.

LedgerError (a ValidationError: the input does not verify)
├── ProofError            a Merkle inclusion/consistency proof does not verify
├── NoteError             a C2SP signed note is malformed or its signatures fail
│   ├── MalformedNoteError
│   ├── InvalidSignatureError
│   └── UnverifiedNoteError   no signature by a known key
└── CheckpointError       a tlog-checkpoint body is malformed or unexpected
"""

from __future__ import annotations

from citybrain.errors import ValidationError


class LedgerError(ValidationError):
    """Base of every ledger verification failure."""

    code = "LedgerError"


class ProofError(LedgerError):
    """A Merkle proof is malformed or does not match the claimed roots."""

    code = "ProofError"


class NoteError(LedgerError):
    """A signed note failed to parse or verify."""

    code = "NoteError"


class MalformedNoteError(NoteError):
    """The note text or a signature line breaks the C2SP signed-note grammar."""

    code = "MalformedNote"


class InvalidSignatureError(NoteError):
    """A signature by a known key does not verify."""

    code = "InvalidSignature"


class UnverifiedNoteError(NoteError):
    """The note carries no signature by any of the required known keys."""

    code = "UnverifiedNote"


class CheckpointError(LedgerError):
    """A checkpoint body is malformed or names an unexpected origin."""

    code = "CheckpointError"

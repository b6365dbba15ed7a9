"""C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): the signed note body of a Merkle log.

Body lines: origin, decimal tree size (no sign, no leading zeros), base64 root hash, then zero or
more non-empty extension lines; the whole body is signed as a C2SP signed note.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass

from citybrain.ledger.errors import CheckpointError, UnverifiedNoteError
from citybrain.ledger.merkle import HASH_SIZE
from citybrain.ledger.note import Note, Signer, Verifier, b64decode_strict, open_note, sign_note


@dataclass(frozen=True)
class Checkpoint:
    """A log's commitment to its first `size` entries: origin, size, root hash and extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or any(c < " " for c in self.origin):
            raise CheckpointError(f"invalid origin {self.origin!r}", field="origin")
        if self.size < 0:
            raise CheckpointError(f"negative tree size {self.size}", field="size")
        if len(self.root) != HASH_SIZE:
            raise CheckpointError(f"root hash is {len(self.root)} bytes, want {HASH_SIZE}", field="root")
        for ext in self.extensions:
            if not ext or any(c < " " for c in ext):
                raise CheckpointError(f"invalid extension line {ext!r}", field="extensions")

    def body(self) -> str:
        """Return the checkpoint note text (newline-terminated)."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "\n".join(lines) + "\n"

    def sign(self, *signers: Signer) -> str:
        """Return the signed checkpoint note."""
        return sign_note(self.body(), *signers)


def parse_checkpoint_body(text: str) -> Checkpoint:
    """Parse an (already verified) checkpoint note text; raise CheckpointError if malformed."""
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint body must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(f"checkpoint body has {len(lines)} lines, want at least 3")
    origin, size_s, root_s, *extensions = lines
    if not size_s.isascii() or not size_s.isdigit() or (len(size_s) > 1 and size_s[0] == "0"):
        raise CheckpointError(f"bad tree size {size_s!r}", field="size")
    if int(size_s) >= 1 << 64:
        raise CheckpointError(f"tree size {size_s} overflows uint64", field="size")
    try:
        root = b64decode_strict(root_s)
    except ValueError as exc:
        raise CheckpointError(f"bad root hash {root_s!r}", field="root") from exc
    return Checkpoint(origin, int(size_s), root, tuple(extensions))


@dataclass(frozen=True)
class SignedCheckpoint:
    """A verified checkpoint together with the note it came from."""

    checkpoint: Checkpoint
    note: Note
    raw: str


def open_checkpoint(
    msg: bytes | str,
    log_key: Verifier,
    *,
    origin: str | None = None,
    witnesses: Iterable[Verifier] = (),
) -> SignedCheckpoint:
    """Verify a signed checkpoint: the log key must have signed it, and its origin must equal `origin` if given.

    Signatures by `witnesses` are verified when present; other unknown keys are ignored.
    """
    note = open_note(msg, [log_key, *witnesses])
    raw = msg.decode("utf-8") if isinstance(msg, bytes) else msg
    if not any((s.name, s.key_hash) == (log_key.name, log_key.key_hash) for s in note.sigs):
        raise UnverifiedNoteError(f"checkpoint is not signed by log key {log_key.name}")
    cp = parse_checkpoint_body(note.text)
    if origin is not None and cp.origin != origin:
        raise CheckpointError(f"checkpoint origin {cp.origin!r} != expected {origin!r}", field="origin")
    return SignedCheckpoint(cp, note, raw)

"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys.

A note is UTF-8 text ending in a newline, a blank line, then one or more signature lines
"— <key name> <base64(key hash[4] || signature)>". Verifier keys are
`<name>+<hex key hash>+<base64(0x01 || pubkey)>`; signer keys are
`PRIVATE+KEY+<name>+<hex key hash>+<base64(0x01 || seed)>`; key hash = SHA-256(name || "\\n" || 0x01 || pubkey)[:4].
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from citybrain.ledger.errors import InvalidSignatureError, MalformedNoteError, UnverifiedNoteError

ALG_ED25519 = 0x01
SIG_PREFIX = "\u2014 "
MAX_SIGNATURES = 100


def b64decode_strict(text: str) -> bytes:
    """Decode standard padded base64, rejecting whitespace, stray characters and bad padding."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"bad base64: {exc}") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("non-canonical base64")
    return raw


def is_valid_key_name(name: str) -> bool:
    """Return True if `name` is non-empty and has no whitespace or '+'."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_hash(name: str, alg: int, key: bytes) -> int:
    """Return the 32-bit key hash SHA-256(name || "\\n" || alg || key)[:4] as an int."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + key).digest()
    return int.from_bytes(digest[:4], "big")


def _raw_public(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 note verifier key."""

    name: str
    key_hash: int
    public_key: bytes

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse `<name>+<hex hash>+<base64(0x01 || pubkey)>`, checking the hash matches."""
        parts = vkey.split("+", 2)
        if len(parts) != 3 or not is_valid_key_name(parts[0]) or len(parts[1]) != 8:
            raise ValueError(f"malformed verifier key {vkey!r}")
        name, hex_hash, b64 = parts
        try:
            want, raw = int(hex_hash, 16), b64decode_strict(b64)
        except ValueError as exc:
            raise ValueError(f"malformed verifier key {vkey!r}") from exc
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise ValueError(f"verifier key {name!r} is not a 32-byte Ed25519 key")
        if key_hash(name, ALG_ED25519, raw[1:]) != want:
            raise ValueError(f"verifier key {name!r} has a wrong key hash")
        return cls(name, want, raw[1:])

    def vkey(self) -> str:
        """Return the vkey string for this verifier."""
        b64 = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_hash:08x}+{b64}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return True iff `signature` is a valid Ed25519 signature of `message`."""
        if len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """An Ed25519 note signer key (keep the skey string secret)."""

    name: str
    key_hash: int
    seed: bytes = field(repr=False)

    @classmethod
    def generate(cls, name: str) -> Signer:
        """Create a fresh random signer for `name`."""
        if not is_valid_key_name(name):
            raise ValueError(f"invalid key name {name!r}")
        seed = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        pub = _raw_public(Ed25519PrivateKey.from_private_bytes(seed).public_key())
        return cls(name, key_hash(name, ALG_ED25519, pub), seed)

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        """Parse `PRIVATE+KEY+<name>+<hex hash>+<base64(0x01 || seed)>`, checking the hash matches."""
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"] or not is_valid_key_name(parts[2]):
            raise ValueError("malformed signer key")
        name, hex_hash, b64 = parts[2:]
        try:
            want, raw = int(hex_hash, 16), b64decode_strict(b64)
        except ValueError as exc:
            raise ValueError("malformed signer key") from exc
        if len(hex_hash) != 8 or len(raw) != 33 or raw[0] != ALG_ED25519:
            raise ValueError(f"signer key {name!r} is not a 32-byte Ed25519 seed")
        signer = cls(name, want, raw[1:])
        if key_hash(name, ALG_ED25519, signer.verifier().public_key) != want:
            raise ValueError(f"signer key {name!r} has a wrong key hash")
        return signer

    def skey(self) -> str:
        """Return the private key string for this signer."""
        b64 = base64.b64encode(bytes([ALG_ED25519]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_hash:08x}+{b64}"

    def verifier(self) -> Verifier:
        """Return the matching verifier."""
        pub = _raw_public(Ed25519PrivateKey.from_private_bytes(self.seed).public_key())
        return Verifier(self.name, self.key_hash, pub)

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of `message`."""
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


@dataclass(frozen=True)
class Signature:
    """One signature line of a note."""

    name: str
    key_hash: int
    signature: bytes

    def line(self) -> str:
        """Return the signature line (with trailing newline)."""
        b64 = base64.b64encode(self.key_hash.to_bytes(4, "big") + self.signature).decode()
        return f"{SIG_PREFIX}{self.name} {b64}\n"


@dataclass(frozen=True)
class Note:
    """An opened note: its text, the signatures verified by known keys, and the unknown-key ones."""

    text: str
    sigs: tuple[Signature, ...]
    unverified: tuple[Signature, ...] = ()


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedNoteError("note text must be non-empty and end with a newline")
    if any(c < " " and c != "\n" for c in text):
        raise MalformedNoteError("note text contains a control character")


def sign_note(text: str, *signers: Signer) -> str:
    """Return the signed note for `text`, signed by each signer in order."""
    _check_text(text)
    if not signers:
        raise ValueError("need at least one signer")
    msg = text.encode("utf-8")
    lines = "".join(Signature(s.name, s.key_hash, s.sign(msg)).line() for s in signers)
    return f"{text}\n{lines}"


def parse_note(msg: bytes | str) -> tuple[str, list[Signature]]:
    """Split a signed note into its text and signature lines without verifying; raise MalformedNoteError."""
    if isinstance(msg, bytes):
        try:
            msg = msg.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedNoteError("note is not valid UTF-8") from exc
    if any(c < " " and c != "\n" for c in msg):
        raise MalformedNoteError("note contains a control character")
    split = msg.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("note has no blank line before its signatures")
    text, block = msg[: split + 1], msg[split + 2 :]
    if not block.endswith("\n"):
        raise MalformedNoteError("signature block must be non-empty and end with a newline")
    sigs: list[Signature] = []
    for line in block[:-1].split("\n"):
        if not line.startswith(SIG_PREFIX):
            raise MalformedNoteError(f"bad signature line {line!r}")
        name, sep, b64 = line[len(SIG_PREFIX) :].partition(" ")
        try:
            raw = b64decode_strict(b64)
        except ValueError as exc:
            raise MalformedNoteError(f"bad signature base64 for {name!r}") from exc
        if not sep or not is_valid_key_name(name) or len(raw) < 5:
            raise MalformedNoteError(f"bad signature line {line!r}")
        sigs.append(Signature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
        if len(sigs) > MAX_SIGNATURES:
            raise MalformedNoteError("too many signatures")
    return text, sigs


def open_note(msg: bytes | str, verifiers: Iterable[Verifier], *, require_all: bool = False) -> Note:
    """Verify a signed note: known-key signatures must verify, unknown keys are kept aside, and at least
    one (or with require_all, every) given verifier must have signed."""
    text, sigs = parse_note(msg)
    known = {(v.name, v.key_hash): v for v in verifiers}
    body = text.encode("utf-8")
    good: list[Signature] = []
    unknown: list[Signature] = []
    for sig in sigs:
        verifier = known.get((sig.name, sig.key_hash))
        if verifier is None:
            if sig not in unknown:
                unknown.append(sig)
            continue
        if any((g.name, g.key_hash) == (sig.name, sig.key_hash) for g in good):
            continue
        if not verifier.verify(body, sig.signature):
            raise InvalidSignatureError(f"invalid signature by {sig.name}+{sig.key_hash:08x}")
        good.append(sig)
    if not good:
        raise UnverifiedNoteError("note has no signature by a known key")
    if require_all:
        missing = sorted(f"{n}+{h:08x}" for n, h in known.keys() - {(g.name, g.key_hash) for g in good})
        if missing:
            raise UnverifiedNoteError(f"note is not signed by {', '.join(missing)}")
    return Note(text, tuple(good), tuple(unknown))

"""Signed-note and checkpoint behaviour beyond the published vectors: round trips, unknown keys ignored,
required keys, duplicate signatures, and 20 malformed notes / 12 malformed checkpoint bodies rejected.
"""

from __future__ import annotations

import pytest

from citybrain.ledger.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint_body
from citybrain.ledger.errors import (
    CheckpointError,
    InvalidSignatureError,
    MalformedNoteError,
    UnverifiedNoteError,
)
from citybrain.ledger.merkle import EMPTY_ROOT, leaf_hash
from citybrain.ledger.note import Signer, Verifier, open_note, parse_note, sign_note

ALICE = Signer.generate("alice.example")
BOB = Signer.generate("bob.example")
TEXT = "hello\nworld\n"


def test_roundtrip_keys() -> None:
    assert Signer.from_skey(ALICE.skey()) == ALICE
    assert Verifier.from_vkey(ALICE.verifier().vkey()) == ALICE.verifier()
    assert "PRIVATE" not in repr(ALICE) and ALICE.seed.hex() not in repr(ALICE)


@pytest.mark.parametrize(
    "key",
    ["", "a+b", "alice+zzzzzzzz+AAAA", "alice+00000000+" + "A" * 44, "a b+00000000+AAAA", "x+1234+AAAA"],
)
def test_bad_vkeys(key: str) -> None:
    with pytest.raises(ValueError):
        Verifier.from_vkey(key)


def test_wrong_key_hash_rejected() -> None:
    name, _, b64 = ALICE.verifier().vkey().split("+", 2)
    with pytest.raises(ValueError):
        Verifier.from_vkey(f"{name}+00000000+{b64}")
    with pytest.raises(ValueError):
        Signer.from_skey(ALICE.skey().replace(f"{ALICE.key_hash:08x}", "00000000"))


def test_unknown_keys_ignored_known_required() -> None:
    msg = sign_note(TEXT, BOB, ALICE)
    note = open_note(msg, [ALICE.verifier()])
    assert note.text == TEXT and [s.name for s in note.sigs] == ["alice.example"]
    assert [s.name for s in note.unverified] == ["bob.example"]
    with pytest.raises(UnverifiedNoteError):
        open_note(msg, [])
    with pytest.raises(UnverifiedNoteError):
        open_note(sign_note(TEXT, BOB), [ALICE.verifier()])
    both = open_note(msg, [ALICE.verifier(), BOB.verifier()], require_all=True)
    assert len(both.sigs) == 2
    with pytest.raises(UnverifiedNoteError):
        open_note(sign_note(TEXT, ALICE), [ALICE.verifier(), BOB.verifier()], require_all=True)


def test_same_name_different_key_is_unknown_not_invalid() -> None:
    impostor = Signer.generate("alice.example")
    note = open_note(sign_note(TEXT, impostor, ALICE), [ALICE.verifier()])
    assert len(note.sigs) == 1 and len(note.unverified) == 1


def test_bad_signature_by_known_key() -> None:
    msg = sign_note(TEXT, ALICE)
    forged = sign_note("hello\nWorld\n", ALICE).split("\n\n", 1)[1]
    with pytest.raises(InvalidSignatureError):
        open_note(TEXT + "\n" + forged, [ALICE.verifier()])
    assert open_note(msg + msg.split("\n\n", 1)[1], [ALICE.verifier()]).sigs  # duplicate line ignored


SIG = sign_note(TEXT, ALICE).split("\n\n", 1)[1]
MALFORMED = [
    "",
    TEXT,
    TEXT + "\n",
    TEXT + "\n" + SIG.rstrip("\n"),
    TEXT + "\n" + SIG.replace("\u2014", "-"),
    TEXT + "\n" + SIG.replace("\u2014 ", "\u2014"),
    TEXT + "\n" + SIG.replace(" ", "  ", 2),
    TEXT + "\n" + SIG.replace("=\n", "\n"),
    TEXT + "\n" + SIG.replace("alice.example", "alice+example"),
    TEXT + "\n" + SIG[:-10] + "!!!!!!!!=\n",
    TEXT + "\n" + "\u2014 alice.example AAAA\n",
    TEXT + "\n" + SIG + "\n",
    TEXT + "\n" + SIG + "trailing\n",
    "hel\x00lo\n\n" + SIG,
    "hel\rlo\n\n" + SIG,
    "hello\tx\n\n" + SIG,
    TEXT + "\n" + SIG * 101,
    TEXT + "\n" + SIG.replace("\u2014 alice.example ", "\u2014  "),
    TEXT + "\n" + SIG.replace("\n", " \n"),
    TEXT + "\n" + SIG.replace("\u2014 alice.example ", "\u2014 alice.example\u00a0"),
]


@pytest.mark.parametrize("msg", MALFORMED)
def test_malformed_notes(msg: str) -> None:
    with pytest.raises(MalformedNoteError):
        parse_note(msg)
    with pytest.raises(MalformedNoteError):
        open_note(msg, [ALICE.verifier()])


def test_invalid_utf8() -> None:
    with pytest.raises(MalformedNoteError):
        parse_note(b"caf\xe9\n\n" + SIG.encode())


def test_sign_rejects_bad_text() -> None:
    for text in ["", "no newline", "a\x01\n"]:
        with pytest.raises(MalformedNoteError):
            sign_note(text, ALICE)


def test_checkpoint_roundtrip() -> None:
    cp = Checkpoint("citybrain.example/ledger", 7, leaf_hash(b"x"), ("ext one", "ext two"))
    signed = cp.sign(ALICE)
    opened = open_checkpoint(
        signed, ALICE.verifier(), origin="citybrain.example/ledger", witnesses=[BOB.verifier()]
    )
    assert opened.checkpoint == cp and opened.raw == signed
    with pytest.raises(CheckpointError):
        open_checkpoint(signed, ALICE.verifier(), origin="other")
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(cp.sign(BOB), ALICE.verifier(), witnesses=[BOB.verifier()])


ROOT = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
BAD_BODIES = [
    "o\n1\n",
    f"o\n1\n{ROOT}",
    f"\n1\n{ROOT}\n",
    f"o\n01\n{ROOT}\n",
    f"o\n+1\n{ROOT}\n",
    f"o\n-1\n{ROOT}\n",
    f"o\n1 \n{ROOT}\n",
    f"o\n18446744073709551616\n{ROOT}\n",
    "o\n1\nAAAA\n",
    f"o\n1\n{ROOT[:-1]}\n",
    f"o\n1\n{ROOT}\n\n",
    "o\n\u0661\n" + ROOT + "\n",
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_malformed_checkpoint_bodies(body: str) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint_body(body)


def test_checkpoint_body_ok() -> None:
    cp = parse_checkpoint_body(f"o\n0\n{ROOT}\nx\n")
    assert cp == Checkpoint("o", 0, EMPTY_ROOT, ("x",))
    assert cp.body() == f"o\n0\n{ROOT}\nx\n"

"""Regular expressions that users send (NGSI-LD `idPattern`, `q` with `~=`), run by RE2.

Python's `re` backtracks: `(a+)+b` against thirty a's runs for minutes, holding the GIL, so one read-only
request would stall the whole node. RE2 (google-re2) matches in time linear in the text, never backtracks,
and refuses what it cannot run that way (back-references, look-around): those patterns answer 400. A
pattern is also refused when longer than `MAX_PATTERN` characters or when its automaton would need more
than `MAX_MEM` bytes (`(a{1000}){1000}`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

import re2

MAX_PATTERN = 1024
MAX_MEM = 8 << 20

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is the client's error, not a line on the node's stderr
_OPTIONS.max_mem = MAX_MEM


class Pattern(Protocol):
    """What callers use of a compiled pattern."""

    def search(self, text: str) -> object | None: ...


class PatternError(ValueError):
    """The pattern is not one RE2 runs (syntax, back-references, look-around, size)."""


@lru_cache(maxsize=512)
def compile_user(pattern: str) -> Pattern:
    """Compile a user's pattern with RE2; raise PatternError saying why it is refused."""
    if len(pattern) > MAX_PATTERN:
        raise PatternError(f"longer than {MAX_PATTERN} characters")
    try:
        compiled: Pattern = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        why = exc.args[0] if exc.args else exc
        raise PatternError(why.decode(errors="replace") if isinstance(why, bytes) else str(why)) from None
    except (TypeError, ValueError) as exc:
        raise PatternError(str(exc)) from None
    return compiled


def search(pattern: str, text: str) -> bool:
    """Tell whether a user's pattern matches somewhere in `text` (PatternError if it is refused)."""
    return compile_user(pattern).search(text) is not None

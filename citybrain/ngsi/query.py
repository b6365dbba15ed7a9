"""The NGSI-LD query language (ETSI GS CIM 009 §4.9): tokenizer, parser and evaluator of `q`.

    q        := or
    or       := and ('|' and)*
    and      := term (';' term)*
    term     := '(' or ')' | path [op value]
    path     := name ('.' name | '[' name ']')*
    op       := '==' | '!=' | '<' | '<=' | '>' | '>=' | '~=' | '!~='
    value    := atom '..' atom | atom (',' atom)* ; atom := number | "string" | true | false | bare text

`;` binds tighter than `|`. A parse error raises BadRequestData naming the position.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from citybrain.model.entity import Entity
from citybrain.ngsi.errors import BadRequestData
from citybrain.ngsi.ldcontext import ActiveContext, to_storage
from citybrain.regex import PatternError, compile_user

Predicate = Callable[[Entity], bool]
OPS = ("!~=", "==", "!=", "<=", ">=", "~=", "<", ">")
_NAME = re.compile(r"[A-Za-z0-9_@:/#\-]+")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
_BARE = re.compile(r"^[^\s<>=!~\"'()\[\]]+$")
MAX_LENGTH = 4096


@dataclass
class Token:
    """One token of a q expression."""

    kind: str  # ( ) ; | path op value end
    text: str
    pos: int


def tokenize(q: str) -> list[Token]:
    """Split a q expression into tokens (values are scanned as a whole after an operator)."""
    if len(q) > MAX_LENGTH:
        raise BadRequestData(f"q: longer than {MAX_LENGTH} characters")
    tokens: list[Token] = []
    i, n = 0, len(q)
    while i < n:
        c = q[i]
        if c.isspace():
            i += 1
        elif c in "();|":
            tokens.append(Token(c, c, i))
            i += 1
        elif tokens and tokens[-1].kind == "op":
            start, quoted, depth = i, False, 0
            while i < n:
                ch = q[i]
                if ch == '"':
                    quoted = not quoted
                elif not quoted and ch == "(":
                    depth += 1
                elif not quoted and ch == ")" and depth:
                    depth -= 1
                elif not quoted and depth == 0 and ch in ";|)":
                    break
                i += 1
            if quoted:
                raise BadRequestData(f"q: unterminated string starting at position {start}")
            if i == start:
                raise BadRequestData(f"q: missing value after {tokens[-1].text!r} at position {start}")
            tokens.append(Token("value", q[start:i].strip(), start))
        elif any(q.startswith(op, i) for op in OPS):
            op = next(op for op in OPS if q.startswith(op, i))
            tokens.append(Token("op", op, i))
            i += len(op)
        else:
            m = re.compile(r"[A-Za-z0-9_@:/#\-.\[\]]+").match(q, i)
            if m is None:
                raise BadRequestData(f"q: unexpected character {c!r} at position {i}")
            tokens.append(Token("path", m.group(), i))
            i = m.end()
    tokens.append(Token("end", "", n))
    return tokens


def parse_atom(text: str) -> Any:
    """Parse one comparable value: number, quoted string, boolean, or bare text (date-time, URI …)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    if _NUMBER.match(text):
        return float(text) if any(c in text for c in ".eE") else int(text)
    if text in ("true", "false"):
        return text == "true"
    if not _BARE.match(text):
        raise BadRequestData(f"q: {text!r} is not a valid value")
    return text


def _split(text: str, sep: str) -> list[str]:
    parts, quoted, start = [], False, 0
    i = 0
    while i < len(text):
        if text[i] == '"':
            quoted = not quoted
        elif not quoted and text.startswith(sep, i):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return parts


def parse_path(text: str, pos: int, ctx: ActiveContext) -> list[tuple[str, str]]:
    """Split an attribute path into (kind, stored name) steps: ('attr'|'sub'|'member', name)."""
    steps: list[tuple[str, str]] = []
    for m in re.finditer(r"\[([^\[\]]*)\]|\.?([^.\[\]]+)|(.)", text):
        if m.group(3) is not None or (m.group(1) is not None and not _NAME.fullmatch(m.group(1) or "")):
            raise BadRequestData(f"q: invalid attribute path {text!r} at position {pos}")
        if m.group(1) is not None:
            steps.append(("member", m.group(1)))
        else:
            name = m.group(2)
            if not _NAME.fullmatch(name):
                raise BadRequestData(f"q: invalid attribute name {name!r} at position {pos}")
            kind = "attr" if not steps else "sub"
            meta = kind == "sub" and name in ("observedAt", "unitCode", "createdAt", "modifiedAt", "datasetId")
            steps.append((kind, name if meta else to_storage(name, ctx)))
    if not steps or steps[0][0] != "attr" or ".." in text:
        raise BadRequestData(f"q: invalid attribute path {text!r} at position {pos}")
    return steps


_MISSING = object()


def resolve(entity: Entity, steps: list[tuple[str, str]]) -> Any:
    """Return the value at an attribute path of an entity, or _MISSING."""
    if steps[0][1] == "id" and len(steps) == 1:
        return entity.id
    node: Any = entity.attrs.get(steps[0][1])
    if node is None and steps[0][1] == "location" and entity.location is not None:
        node = {"type": "GeoProperty", "value": entity.location}
    for kind, name in steps[1:]:
        if node is None:
            return _MISSING
        if kind == "sub" and isinstance(node, dict) and name in node:
            node = node[name]
            continue
        value = node.get("value", node.get("object")) if isinstance(node, dict) and "type" in node else node
        node = value.get(name) if isinstance(value, dict) else None
    if node is None:
        return _MISSING
    if isinstance(node, dict) and node.get("type") in ("Property", "Relationship", "GeoProperty", "ListProperty",
                                                        "LanguageProperty", "VocabProperty", "JsonProperty"):
        for key in ("value", "object", "languageMap", "valueList", "vocab", "json"):
            if key in node:
                return node[key]
    if isinstance(node, dict) and "@value" in node:
        return node["@value"]
    return node


def _compare(op: str, have: Any, want: Any) -> bool:
    if isinstance(have, bool) != isinstance(want, bool):
        return False
    if isinstance(have, int | float) and isinstance(want, int | float) or \
            isinstance(have, str) and isinstance(want, str):
        a: Any = have
        return bool({"==": a == want, "!=": a != want, "<": a < want, "<=": a <= want,
                     ">": a > want, ">=": a >= want}[op])
    return op == "!=" if op in ("==", "!=") else False


def _term(steps: list[tuple[str, str]], op: str | None, raw: str | None) -> Predicate:
    """A term holds when it holds for the attribute's default instance or any instance with a datasetId."""
    inner = _term_default(steps, op, raw)
    prefix = steps[0][1] + " "  # convert.SEP: "<name> <datasetId>" keys hold the other instances

    def check(e: Entity) -> bool:
        if inner(e):
            return True
        for key, attr in e.attrs.items():
            if key.startswith(prefix) and inner(msgspec.structs.replace(e, attrs={**e.attrs, steps[0][1]: attr})):
                return True
        return False

    return check


def _term_default(steps: list[tuple[str, str]], op: str | None, raw: str | None) -> Predicate:
    if op is None:
        return lambda e: resolve(e, steps) is not _MISSING
    assert raw is not None
    if op in ("~=", "!~="):
        text = parse_atom(raw)
        try:
            rx = compile_user(str(text))
        except PatternError as exc:
            raise BadRequestData(f"q: invalid or unsupported regular expression {str(text)[:100]!r}: {exc} "
                                 "(RE2 syntax, no back-references or look-around)") from None
        neg = op == "!~="
        return lambda e: (lambda v: v is not _MISSING and isinstance(v, str) and bool(rx.search(v)) != neg)(
            resolve(e, steps))
    rng = _split(raw, "..")
    if len(rng) == 2:
        if op not in ("==", "!="):
            raise BadRequestData(f"q: a range needs == or !=, not {op}")
        lo, hi = parse_atom(rng[0]), parse_atom(rng[1])
        inside = lambda v: _compare(">=", v, lo) and _compare("<=", v, hi)  # noqa: E731
        return _any(steps, inside if op == "==" else (lambda v: not inside(v)))
    if len(rng) > 2:
        raise BadRequestData(f"q: invalid range {raw!r}")
    values = [parse_atom(p) for p in _split(raw, ",")]
    if len(values) > 1:
        if op not in ("==", "!="):
            raise BadRequestData(f"q: a list of values needs == or !=, not {op}")
        hit = lambda v: any(_compare("==", v, w) for w in values)  # noqa: E731
        return _any(steps, hit if op == "==" else (lambda v: not hit(v)))
    want = values[0]
    return _any(steps, lambda v: _compare(op, v, want))


def _any(steps: list[tuple[str, str]], test: Callable[[Any], bool]) -> Predicate:
    def check(e: Entity) -> bool:
        v = resolve(e, steps)
        if v is _MISSING:
            return False
        return any(test(x) for x in v) if isinstance(v, list) else test(v)

    return check


class Parser:
    """Recursive-descent parser over the token list, producing a predicate."""

    def __init__(self, q: str, ctx: ActiveContext) -> None:
        self.tokens = tokenize(q)
        self.i = 0
        self.ctx = ctx
        self.depth = 0

    def peek(self) -> Token:
        """Return the current token."""
        return self.tokens[self.i]

    def take(self) -> Token:
        """Consume and return the current token."""
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Predicate:
        """Parse the whole expression."""
        pred = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise BadRequestData(f"q: unexpected {tok.text!r} at position {tok.pos}")
        return pred

    def or_(self) -> Predicate:
        """Parse terms joined by |."""
        parts = [self.and_()]
        while self.peek().kind == "|":
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else (lambda e: any(p(e) for p in parts))

    def and_(self) -> Predicate:
        """Parse terms joined by ;."""
        parts = [self.term()]
        while self.peek().kind == ";":
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda e: all(p(e) for p in parts))

    def term(self) -> Predicate:
        """Parse a parenthesised expression or one comparison."""
        tok = self.take()
        if tok.kind == "(":
            self.depth += 1
            if self.depth > 32:
                raise BadRequestData("q: too deeply nested")
            inner = self.or_()
            close = self.take()
            if close.kind != ")":
                raise BadRequestData(f"q: expected ')' at position {close.pos}")
            self.depth -= 1
            return inner
        if tok.kind != "path":
            what = "end of query" if tok.kind == "end" else repr(tok.text)
            raise BadRequestData(f"q: expected an attribute at position {tok.pos}, found {what}")
        steps = parse_path(tok.text, tok.pos, self.ctx)
        if self.peek().kind != "op":
            return _term(steps, None, None)
        op = self.take().text
        value = self.take()
        if value.kind != "value":
            raise BadRequestData(f"q: missing value after {op} at position {value.pos}")
        return _term(steps, op, value.text)


def parse_q(q: str, ctx: ActiveContext) -> Predicate:
    """Compile a q expression into a predicate over entities, or raise BadRequestData."""
    if not q.strip():
        raise BadRequestData("q: empty query")
    return Parser(q, ctx).parse()

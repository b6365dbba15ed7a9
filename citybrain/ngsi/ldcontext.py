"""JSON-LD @context resolution from the local cache, and term expansion and compaction.

NGSI-LD only needs term-level JSON-LD: attribute names and entity types are expanded to IRIs with the
request's context and compacted back with it. Context URLs resolve from `contexts/index.json` and the
files beside it; nothing is ever fetched from the network.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from citybrain.ngsi.errors import BadRequestData, LdContextNotAvailable

HERE = Path(__file__).parent / "contexts"
_INDEX: dict[str, Any] = orjson.loads((HERE / "index.json").read_bytes())
CORE_URL: str = _INDEX["core"]
_CORE_VERSIONED = re.compile(r"^https?://uri\.etsi\.org/ngsi-ld/v1/ngsi-ld-core-context-v1\.\d+\.jsonld$")
VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
_KEYWORDS = {"id", "type", "@context", "scope", "location", "observationSpace", "operationSpace",
             "createdAt", "modifiedAt", "deletedAt"}


def cached_urls() -> dict[str, str]:
    """Return the URL → local file map of the context cache."""
    return dict(_INDEX["urls"])


@lru_cache(maxsize=64)
def load_url(url: str) -> Any:
    """Return the @context value of a cached context document, or raise LdContextNotAvailable."""
    file = _INDEX["urls"].get(url)
    if file is None and _CORE_VERSIONED.match(url) and "non-existing" not in url:
        file = _INDEX["urls"][CORE_URL]  # any other core version: the built-in core (v1.8 is a superset)
    if file is None:
        raise LdContextNotAvailable(
            f"@context {url} is not in citybrain's local context cache (contexts are never fetched); "
            "send the context inline or use a cached URL (GET /ngsi-ld/v1/jsonldContexts lists them)")
    return orjson.loads((HERE / file).read_bytes())["@context"]


class ActiveContext:
    """Term definitions of a resolved @context: term → IRI and IRI → term."""

    def __init__(self, terms: dict[str, str], vocab: str | None, urls: tuple[str, ...] = ()) -> None:
        self.terms = terms
        self.vocab = vocab
        self.urls = urls
        self.reverse: dict[str, str] = {}
        for term, iri in terms.items():
            self.reverse.setdefault(iri, term)
        for term, iri in terms.items():  # a term that maps to itself wins (avoid odd aliases)
            if self.reverse.get(iri) != term and iri.rsplit("/", 1)[-1].rsplit("#", 1)[-1] == term:
                self.reverse[iri] = term

    def expand(self, term: str) -> str:
        """Return the IRI of a term (or compact IRI, or absolute IRI)."""
        iri = self.terms.get(term)
        if iri is not None:
            return iri
        if ":" in term:
            prefix, _, suffix = term.partition(":")
            base = self.terms.get(prefix)
            if base is not None and not suffix.startswith("//"):
                return base + suffix
            return term
        return (self.vocab or VOCAB) + term

    def compact(self, iri: str) -> str:
        """Return the shortest name of an IRI in this context (the IRI itself if none)."""
        term = self.reverse.get(iri)
        if term is not None:
            return term
        vocab = self.vocab or VOCAB
        if iri.startswith(vocab):
            rest = iri[len(vocab):]
            if rest and rest not in self.terms:
                return rest
        return iri


class _StorageContext(ActiveContext):
    """The default context: a default-vocabulary IRI always compacts to its short name."""

    def compact(self, iri: str) -> str:
        """Return the stored name of an IRI."""
        term = self.reverse.get(iri)
        if term is not None:
            return term
        if iri.startswith(VOCAB) and len(iri) > len(VOCAB):
            return iri[len(VOCAB):]
        return iri


def _collect(ctx: Any, terms: dict[str, Any], vocab: list[str | None], urls: list[str], depth: int = 0) -> None:
    if depth > 8:
        raise BadRequestData("@context: too deeply nested")
    if ctx is None:
        return
    if isinstance(ctx, str):
        urls.append(ctx)
        _collect(load_url(ctx), terms, vocab, urls, depth + 1)
    elif isinstance(ctx, list):
        for item in ctx:
            _collect(item, terms, vocab, urls, depth + 1)
    elif isinstance(ctx, dict):
        for key, value in ctx.items():
            if key == "@vocab":
                vocab[0] = value if isinstance(value, str) else None
            elif key.startswith("@"):
                continue
            elif isinstance(value, str):
                terms[key] = value
            elif isinstance(value, dict) and isinstance(value.get("@id"), str):
                terms[key] = value["@id"]
            elif value is None:
                terms.pop(key, None)
    else:
        raise BadRequestData(f"@context: expected a URL, an object or a list, not {type(ctx).__name__}")


def _resolve_prefixes(terms: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for term, iri in terms.items():
        if iri.startswith("@"):
            continue
        if ":" in iri:
            prefix, _, suffix = iri.partition(":")
            base = terms.get(prefix)
            if isinstance(base, str) and not suffix.startswith("//") and prefix != term:
                iri = base + suffix
        out[term] = iri
    return out


def build(ctx: Any, with_core: bool = True) -> ActiveContext:
    """Resolve an @context value (URL, object or list) into an ActiveContext; core is applied last."""
    terms: dict[str, Any] = {}
    vocab: list[str | None] = [None]
    urls: list[str] = []
    _collect(ctx, terms, vocab, urls)
    if with_core:
        _collect(CORE_URL, terms, vocab, [])
    return ActiveContext(_resolve_prefixes(terms), vocab[0], tuple(urls))


@lru_cache(maxsize=256)
def _build_cached(key: bytes) -> ActiveContext:
    return build(orjson.loads(key))


def resolve(ctx: Any) -> ActiveContext:
    """Return the ActiveContext of a request's @context (cached by value)."""
    return _build_cached(orjson.dumps(ctx, option=orjson.OPT_SORT_KEYS))


@lru_cache(maxsize=1)
def default_context() -> ActiveContext:
    """citybrain's storage context: core first, then the Smart Data Models contexts, first one winning."""
    merged: dict[str, str] = {}
    for item in [CORE_URL, *_INDEX["default"]]:
        one = build(item, with_core=False)
        for term, iri in one.terms.items():
            merged.setdefault(term, iri)
    ctx = _StorageContext(merged, VOCAB)
    for item in _INDEX["default"]:  # every IRI any default context gives a term compacts to that term
        for term, iri in build(item, with_core=False).terms.items():
            ctx.reverse.setdefault(iri, term)
            if iri.startswith("http://") and "https://" + iri[7:] not in ctx.reverse:
                ctx.reverse["https://" + iri[7:]] = term
    return ctx


def to_storage(name: str, ctx: ActiveContext) -> str:
    """Return the stored name of a request term: expanded with `ctx`, compacted with the default context."""
    if name in _KEYWORDS:
        return name
    return default_context().compact(ctx.expand(name))


def from_storage(name: str, ctx: ActiveContext) -> str:
    """Return a stored name compacted against the request's context."""
    if name in _KEYWORDS:
        return name
    dflt = default_context()
    mine = ctx.terms.get(name)
    if mine is not None and (mine == dflt.expand(name) or dflt.reverse.get(mine) == name):
        return name  # the request's context gives this short name an IRI that is stored under it
    if mine is None and ":" not in name and (ctx.vocab or VOCAB) == VOCAB:
        return name  # the request would expand it with the default vocabulary: same attribute, short name
    return ctx.compact(dflt.expand(name))

"""Duplicate proposals: same category, open, near in space and time, or alike in text (TF-IDF cosine).

The text measure is a TF-IDF cosine over words and Chinese character bigrams, with document frequencies
learnt from every report the desk has seen. (A sentence-embedding model was considered; the packaged
all-MiniLM-L6-v2 needs PyTorch through sentence-transformers, too heavy for this service.)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

_WORD = re.compile(r"[a-z0-9]+|[\u4e00-\u9fff]+")


def terms(text: str) -> Counter[str]:
    """Return the terms of a text: lower-case words and bigrams of CJK runs."""
    out: Counter[str] = Counter()
    for tok in _WORD.findall(text.lower()):
        if "\u4e00" <= tok[0] <= "\u9fff":
            out.update(tok[i:i + 2] for i in range(max(len(tok) - 1, 1)))
        elif len(tok) > 1:
            out[tok] += 1
    return out


def metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Return the great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 12_742_000 * math.asin(min(1.0, math.sqrt(a)))


@dataclass
class OpenCase:
    """What the duplicate check needs to know about one open case."""

    id: str
    category: str
    community: str | None
    lon: float | None
    lat: float | None
    epoch: float
    terms: Counter[str] = field(default_factory=Counter)
    vec: dict[str, float] = field(default_factory=dict)  # unit TF-IDF vector, weighted when first seen


class TextModel:
    """Document frequencies for TF-IDF weighting."""

    def __init__(self) -> None:
        self.df: Counter[str] = Counter()
        self.docs = 0

    def learn(self, bag: Counter[str]) -> None:
        """Count a document's terms."""
        self.docs += 1
        self.df.update(bag.keys())

    def vector(self, bag: Counter[str]) -> dict[str, float]:
        """Return the unit-length TF-IDF vector of a bag of terms."""
        n = self.docs + 1
        vec = {t: c * (math.log((n + 1) / (self.df.get(t, 0) + 1)) + 1) for t, c in bag.items()}
        norm = math.sqrt(sum(w * w for w in vec.values()))
        return {t: w / norm for t, w in vec.items()} if norm else {}

    @staticmethod
    def cosine(a: dict[str, float], b: dict[str, float]) -> float:
        """Return the cosine similarity of two unit vectors."""
        if len(a) > len(b):
            a, b = b, a
        return sum(w * b.get(t, 0.0) for t, w in a.items())


class DuplicateIndex:
    """Open cases by category, for proposing duplicates without reading the store."""

    def __init__(self, radius_m: float, window_hours: float, text_threshold: float) -> None:
        self.radius_m = radius_m
        self.window_s = window_hours * 3600
        self.threshold = text_threshold
        self.text = TextModel()
        self.by_category: dict[str, dict[str, OpenCase]] = {}

    def add(self, case: OpenCase) -> None:
        """Remember an open case."""
        if case.terms and not case.vec:
            case.vec = self.text.vector(case.terms)
        self.by_category.setdefault(case.category, {})[case.id] = case

    def remove(self, case_id: str, category: str) -> None:
        """Forget a case that is no longer open."""
        self.by_category.get(category, {}).pop(case_id, None)

    def same_area(self, category: str, community: str | None) -> OpenCase | None:
        """Return the newest open case of a category in a community (alerts join it)."""
        found = [c for c in self.by_category.get(category, {}).values() if community and c.community == community]
        return max(found, key=lambda c: c.epoch) if found else None

    def propose(self, new: OpenCase, limit: int = 5, scan: int = 300) -> list[dict[str, float | str]]:
        """Return likely duplicates of a new report: [{id, metres, text}], best first (newest `scan` looked at)."""
        out: list[tuple[float, dict[str, float | str]]] = []
        if new.terms and not new.vec:
            new.vec = self.text.vector(new.terms)
        for n, c in enumerate(reversed(self.by_category.get(new.category, {}).values())):
            if n >= scan:
                break
            if c.id == new.id or abs(new.epoch - c.epoch) > self.window_s:
                continue
            dist = None
            if None not in (new.lon, new.lat, c.lon, c.lat) and abs(new.lat - c.lat) < 0.01:  # type: ignore[operator]
                dist = metres(new.lon, new.lat, c.lon, c.lat)  # type: ignore[arg-type]
            near = dist is not None and dist <= self.radius_m
            sim = 0.0
            if (near or (new.community and c.community == new.community)) and new.vec and c.vec:
                sim = self.text.cosine(new.vec, c.vec)
            if near or sim >= self.threshold:
                score = sim + (1.0 - (dist or 0.0) / max(self.radius_m, 1.0) if near else 0.0)
                out.append((score, {"id": c.id, "metres": round(dist, 1) if dist is not None else -1.0,
                                    "text": round(sim, 3)}))
        out.sort(key=lambda x: -x[0])
        return [x[1] for x in out[:limit]]

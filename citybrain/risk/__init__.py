"""Risk per grid cell and community: hazard × exposure × vulnerability → a warning level with its reasons.

- hazard: what the rules and detectors say now about the cell (blue 0.25 … red 1.0; a detector 0.15 × score)
- exposure: people and critical buildings in the cell (population relative to the city's median cell)
- vulnerability: elderly and children shares, and for floods low-lying cells and old buildings
Recomputed on every signal, in the observation pipeline, so a cell's level follows its data within a second.
Every level change is published as event `risk.changed` (bus subject cb.event.risk.changed).

Hazards and assessments are kept per pipeline partition (a cell's and its community's go with the community's
partition): checkpointed and moved with it (`capture`/`restore`/`drop`), and published for the other processes,
so that `/api/v1/risk` answers alike everywhere (`everywhere()`).
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

import orjson

from citybrain.bus import Message
from citybrain.events import Event
from citybrain.outbox import Outbox
from citybrain.ports import Ports
from citybrain.risk.factors import Profile, level_of_score, profile_of, vulnerability
from citybrain.signals import RANK, Signal
from citybrain.store import AppendEvent, EntityQuery

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

HAZARD = {"informational": 0.15, "blue": 0.25, "yellow": 0.5, "orange": 0.75, "red": 1.0}


class RiskModel:
    """Keeps the live hazards per cell and the resulting risk of every cell and community."""

    name = "risk"

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self.hazards: dict[str, dict[str, Signal]] = {}  # cell -> source key -> signal
        self.risk: dict[str, dict[str, Any]] = {}  # cell or community -> assessment
        self.critical: dict[str, int] = {}  # cell -> critical buildings
        self._profiles: dict[str, Profile] = {}
        self._median: float | None = None
        self.changes = 0
        self.outbox = Outbox(rt)

    @property
    def places(self) -> Any:
        """The place index."""
        return self.rt.ports.places

    async def load_buildings(self) -> None:
        """Count critical buildings per cell from the store (once, at start)."""
        offset = 0
        while True:
            batch = await self.rt.store.query_entities(EntityQuery(types=["Building"], limit=5000, offset=offset))
            for b in batch:
                if b.place and b.value("critical"):
                    self.critical[b.place] = self.critical.get(b.place, 0) + 1
            if len(batch) < 5000:
                break
            offset += 5000
        self._profiles.clear()

    def median_population(self) -> float:
        """Return the median population of the grid cells (cached)."""
        if self._median is None:
            pops = [float(p) for c in self.places.of_type("Grid") if isinstance(p := c.value("population"), int | float)]
            self._median = statistics.median(pops) if pops else 0.0
        return self._median

    def profile(self, cell: str) -> Profile:
        """Return the exposure/vulnerability profile of a cell (cached until the city model changes)."""
        prof = self._profiles.get(cell)
        if prof is None:
            prof = self._profiles[cell] = profile_of(self.places.get(cell), self.critical.get(cell, 0),
                                                     self.median_population())
        return prof

    def invalidate(self) -> None:
        """Forget cached profiles (population or buildings changed)."""
        self._profiles.clear()
        self._median = None

    # updating --------------------------------------------------------------------------------
    async def on_signals(self, signals: list[Signal]) -> None:
        """Apply signals to the hazards of the cells they cover and recompute those cells."""
        touched: set[str] = set()
        for sig in signals:
            if sig.scope in ("sensor", "grid") or sig.source == "detector":
                cells = [sig.place] if sig.place else []
            else:
                cells = self.places.cells_of(sig.unit)
            key = f"{sig.source_id}|{sig.unit}"
            for cell in cells:
                bucket = self.hazards.setdefault(cell, {})
                if sig.level == "none":
                    bucket.pop(key, None)
                else:
                    bucket[key] = sig
                touched.add(cell)
        if touched:
            await self.recompute(touched)

    async def recompute(self, cells: set[str]) -> list[dict[str, Any]]:
        """Recompute cells and their communities; publish risk.changed for every level that moved."""
        changed: list[dict[str, Any]] = []
        communities: set[str] = set()
        for cell in sorted(cells):
            self._store(cell, self.assess_cell(cell), changed)
            community = self.places.area_of(cell, "Community")
            if community:
                communities.add(community)
        for community in sorted(communities):
            self._store(community, self.assess_community(community), changed)
        if changed:
            self.changes += len(changed)
            ctx = self.rt.context("risk")
            now = self.rt.now()
            events = [Event(type="risk.changed", time=now, context=ctx.child() if i else ctx, data=d)
                      for i, d in enumerate(changed)]
            self.outbox.write(*[AppendEvent(e) for e in events])
            for e in events:
                await self.rt.publish(e)
        return changed

    def _store(self, place: str, assessment: dict[str, Any], changed: list[dict[str, Any]]) -> None:
        old = self.risk.get(place)
        before = old["level"] if old else "none"
        if assessment["level"] == "none" and old is None:
            return
        self.risk[place] = assessment
        if assessment["level"] != before:
            changed.append({**assessment, "previous": before})

    def assess_cell(self, cell: str) -> dict[str, Any]:
        """Return the risk of one cell with the factors that drove it."""
        prof = self.profile(cell)
        best: tuple[float, Signal, float] | None = None
        for sig in self.hazards.get(cell, {}).values():
            hazard = HAZARD.get(sig.level, 0.0) * (sig.score if sig.source == "detector" else 1.0)
            v, _ = vulnerability(prof, sig.category)
            score = hazard * prof.exposure * v
            if best is None or score > best[0]:
                best = (score, sig, hazard)
        out: dict[str, Any] = {"place": cell, "type": "Grid", "level": "none", "score": 0.0, "time": self.rt.now()}
        if best is None:
            out.update(factors=[], explanation="no active hazard")
            return out
        score, sig, hazard = best
        v, parts = vulnerability(prof, sig.category)
        level = level_of_score(score)
        source = f"{sig.source} {sig.source_id} ({sig.rule_name}) {sig.level} on {sig.unit}"
        factors = [
            {"factor": "hazard", "value": round(hazard, 3), "source": source, "category": sig.category,
             "evidence": sig.evidence, "observedAt": sig.observed_at},
            {"factor": "exposure", "value": round(prof.exposure, 3), "population": prof.population,
             "critical_buildings": prof.critical},
            {"factor": "vulnerability", "value": round(v, 3), "parts": parts},
        ]
        others = sorted({f"{s.source_id} {s.level}" for s in self.hazards.get(cell, {}).values()} - {
            f"{sig.source_id} {sig.level}"})
        text = (f"{level}: {sig.category} hazard {hazard:.2f} ({sig.source_id} {sig.level} on {sig.unit})"
                f" × exposure {prof.exposure:.2f} (population {prof.population}, {prof.critical} critical buildings)"
                f" × vulnerability {v:.2f} ({', '.join(f'{k} {x}' for k, x in parts.items()) or 'baseline'})"
                f" = {score:.2f}")
        out.update(level=level, score=round(score, 3), category=sig.category, factors=factors,
                   other_hazards=others, explanation=text)
        return out

    def assess_community(self, community: str) -> dict[str, Any]:
        """Return a community's risk: its worst cell, with how many cells are at each level."""
        counts: dict[str, int] = {}
        worst: dict[str, Any] | None = None
        for cell in self.places.cells_of(community):
            r = self.risk.get(cell)
            if r is None or r["level"] == "none":
                continue
            counts[r["level"]] = counts.get(r["level"], 0) + 1
            if worst is None or r["score"] > worst["score"]:
                worst = r
        out: dict[str, Any] = {"place": community, "type": "Community", "level": "none", "score": 0.0,
                               "time": self.rt.now(), "cells_by_level": counts}
        if worst is None:
            out.update(factors=[], explanation="no cell at risk")
            return out
        out.update(level=worst["level"], score=worst["score"], category=worst.get("category"),
                   worst_cell=worst["place"], factors=worst["factors"],
                   explanation=f"worst cell {worst['place']}: {worst['explanation']}; cells at risk: "
                               + ", ".join(f"{n} {lvl}" for lvl, n in sorted(counts.items(), key=lambda x: -RANK[x[0]])))
        return out

    # partition state (citybrain.situation.partitions) ----------------------------------------
    def _part(self, place: str) -> int:
        pipeline = self.rt.ports.find(Ports.pipeline)
        return pipeline.part_of_place(place) if pipeline is not None else 0

    def capture(self, n: int) -> Any:
        """Return the hazards and assessments of partition n's cells and communities."""
        return {"hazards": {c: b for c, b in self.hazards.items() if self._part(c) == n},
                "risk": {p: r for p, r in self.risk.items() if self._part(p) == n}}

    def restore(self, n: int, state: Any) -> None:
        """Take partition n's hazards and assessments back from a checkpoint."""
        self.hazards.update(state["hazards"])
        self.risk.update(state["risk"])

    def drop(self, n: int) -> None:
        """Forget partition n's hazards and assessments."""
        for c in [c for c in self.hazards if self._part(c) == n]:
            del self.hazards[c]
        for p in [p for p in self.risk if self._part(p) == n]:
            del self.risk[p]

    def publish(self, n: int) -> Any:
        """Return partition n's assessments, as the other processes read them."""
        return [r for p, r in sorted(self.risk.items()) if self._part(p) == n]

    def load(self, data: Any) -> Any:
        """Index published assessments by place."""
        return {r["place"]: r for r in data}

    async def everywhere(self) -> dict[str, dict[str, Any]]:
        """Return the assessments of every partition: this process's live, the others' as last published."""
        pipeline = self.rt.ports.find(Ports.pipeline)
        others = await pipeline.read_others() if pipeline is not None else {}
        if not others:
            return self.risk
        out: dict[str, dict[str, Any]] = {}
        for _, pub in sorted(others.items()):
            out.update(pub.parts.get(self.name) or {})
        out.update(self.risk)
        return out

    def listing(self, level: str | None = None, minimum: str = "blue",
                risk: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Return current assessments (this process's, or those given) at or above `minimum`, worst first."""
        rows = [r for r in (self.risk if risk is None else risk).values()
                if RANK.get(r["level"], 0) >= RANK.get(minimum, 1)
                and (level is None or r["type"].lower() == level.lower())]
        return sorted(rows, key=lambda r: (-r["score"], r["place"]))


async def setup(rt: CityBrain) -> None:
    """Create the risk model and feed it the rule and detector signals."""
    model = RiskModel(rt)
    await model.load_buildings()
    rt.ports.risk = model
    rt.ports.signals.sinks.append(model.on_signals)
    pipeline = rt.ports.find(Ports.pipeline)
    if pipeline is not None:
        pipeline.register(model)
        pipeline.publish_with(model)

    async def model_changed(msg: Message) -> None:
        data = orjson.loads(msg.data).get("data", {})
        if data.get("type") == "Building" and data.get("id"):
            b = await rt.store.get_entity(str(data["id"]))
            if b is not None and b.place and b.value("critical"):
                model.critical[b.place] = model.critical.get(b.place, 0) + 1
        model.invalidate()

    await rt.bus.subscribe("cb.event.command.entity.write", model_changed)
    await rt.bus.subscribe("cb.event.command.entity.update", model_changed)

"""The case desk: the cases service (catalog, duplicate index) and the intake pipeline every channel uses."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.cases.catalog import Catalog, Category
from citybrain.cases.model import COLLECTION, FINAL, live_tasks
from citybrain.cases.similar import DuplicateIndex, OpenCase, terms
from citybrain.clock import parse_time
from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.errors import Conflict, NotFound
from citybrain.model.places import PlaceIndex
from citybrain.store import PutDoc
from citybrain.store.base import Op

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


class CaseDesk:
    """rt.services["cases"]: reads and saves case documents and runs the automatic steps."""

    def __init__(self, rt: CityBrain, catalog: Catalog) -> None:
        self.rt = rt
        self.catalog = catalog
        d = catalog.duplicates
        self.index = DuplicateIndex(d["radius_m"], d["window_hours"], d["text_threshold"])
        # recently written cases: saves a store round trip per step; a stale entry (another process wrote)
        # fails the optimistic version check, is dropped and the step retried
        self.cache: OrderedDict[str, tuple[bytes, int]] = OrderedDict()
        self.cache_size = 20_000

    @property
    def places(self) -> PlaceIndex | None:
        """The city's place index (None in a runtime without the model component)."""
        places: PlaceIndex | None = self.rt.services.get("places")
        return places

    def area(self, place: str | None, level: str) -> str | None:
        """Return the place's ancestor of a level (Community, City …)."""
        if place is None or self.places is None:
            return None
        return self.places.area_of(place, level)

    def category_of(self, case: dict[str, Any]) -> Category:
        """Return the catalog category of a case."""
        return self.catalog.category(case["category"])

    # documents -------------------------------------------------------------------------------
    async def load(self, case_id: str) -> tuple[dict[str, Any], int]:
        """Return (a private copy of) a case document and its version, or raise NotFound."""
        hit = self.cache.get(case_id)
        if hit is not None:
            return _dec.decode(hit[0]), hit[1]
        doc = await self.rt.store.get_doc(COLLECTION, case_id)
        if doc is None:
            raise NotFound(f"case {case_id} not found", field="id")
        return doc.data, doc.version

    async def read(self, case_id: str) -> dict[str, Any] | None:
        """Return a case document for reading (cached or stored), or None."""
        try:
            return (await self.load(case_id))[0]
        except NotFound:
            return None

    def remember(self, case: dict[str, Any], version: int) -> None:
        """Cache a case as committed at `version`."""
        self.cache[case["id"]] = (_enc.encode(case), version)
        self.cache.move_to_end(case["id"])
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)

    def save(self, case: dict[str, Any], version: int, result: Any = None,
             extra: list[PutDoc] | None = None) -> Outcome:
        """Return the outcome that stores a case (optimistically, at `version`) and announces its step."""
        last = case["timeline"][-1] if case["timeline"] else {}
        event = {"case": case["id"], "step": last.get("step"), "state": case["state"], "category": case["category"],
                 "place": case.get("place"), "departments": case.get("departments", []), "note": last.get("note", "")}
        ops: list[Op] = [PutDoc(COLLECTION, case["id"], case, expect_version=version), *(extra or [])]
        docs = [(case, version)] + [(op.data, op.expect_version or 0) for op in extra or [] if op.collection == COLLECTION]

        async def after() -> None:
            for d, v in docs:
                self.remember(d, v + 1)
                self.track(d)

        return Outcome(ops=ops, result=result if result is not None else summary(case), event=event, after=after)

    def track(self, case: dict[str, Any]) -> None:
        """Keep the in-memory duplicate index in step with a stored case."""
        if case["state"] in FINAL:
            self.index.remove(case["id"], case["category"])
            return
        if case["id"] in self.index.by_category.get(case["category"], {}):
            return
        loc = case.get("location") or {}
        bag = terms(f"{case.get('title', '')} {case.get('description', '')}")
        self.index.add(OpenCase(case["id"], case["category"], case.get("community"), loc.get("lon"), loc.get("lat"),
                                parse_time(case["created_at"]).timestamp(), bag))

    async def warm(self) -> None:
        """Load open cases into the duplicate index at start."""
        offset = 0
        while True:
            batch = await self.rt.store.list_docs(COLLECTION, where={"open": True}, limit=2000, offset=offset)
            for doc in batch:
                self.track(doc.data)
                self.index.text.learn(terms(f"{doc.data.get('title', '')} {doc.data.get('description', '')}"))
            if len(batch) < 2000:
                return
            offset += 2000

    # the pipeline ----------------------------------------------------------------------------
    async def run(self, name: str, payload: dict[str, Any], ctx: Context, retries: int = 3) -> Any:
        """Execute a command, retrying automatic steps that lost an optimistic-version race."""
        for attempt in range(retries):
            try:
                return await self.rt.execute(name, payload, ctx)
            except Conflict as exc:
                if "version" not in exc.detail or attempt == retries - 1:
                    raise
                self.cache.pop(str(payload.get("id")), None)
                if "into" in payload:
                    self.cache.pop(str(payload["into"]), None)
        return None

    async def submit(self, payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
        """Take a report from any channel: intake, then (for trusted channels) file and route automatically."""
        result: dict[str, Any] = await self.rt.execute("case.intake", payload, ctx)
        if result.get("joined") or payload.get("channel", "grid") not in self.catalog.auto_file:
            return result
        return await self.file(result["id"], ctx.child("system:auto-file"), "auto-filed: trusted channel")

    async def file(self, case_id: str, ctx: Context, note: str = "") -> dict[str, Any]:
        """File a case and dispatch it along its route when the rules know one (else: command centre)."""
        result: dict[str, Any] = await self.run("case.file", {"id": case_id, "note": note}, ctx)
        if result.get("route"):
            result = await self.run("case.dispatch", {"id": case_id, "note": "routed by rule"},
                                    ctx.child("system:router"))
        return result

    async def kpis(self, within: str | None = None) -> dict[str, Any]:
        """Dashboard tiles for cases in an area (see views.kpis)."""
        from citybrain.cases.views import kpis

        return await kpis(self.rt, within)

    def on_time(self, case: dict[str, Any]) -> bool:
        """Tell whether every live task was done by its deadline."""
        return all(t.get("done_at") and t["done_at"] <= t["deadline"] for t in live_tasks(case))


def summary(case: dict[str, Any]) -> dict[str, Any]:
    """Return the short form of a case that commands return."""
    return {"id": case["id"], "state": case["state"], "category": case["category"],
            "departments": case.get("departments", []), "queue": case.get("queue"), "route": case.get("route"),
            "token": case.get("token"), "duplicates": case.get("duplicates", [])}


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(dict[str, Any])

def desk_of(rt: CityBrain) -> CaseDesk:
    """Return the runtime's case desk."""
    desk: CaseDesk = rt.services["cases"]
    return desk

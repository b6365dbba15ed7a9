"""The case desk: the cases service (catalog, duplicate index) and the intake pipeline every channel uses.

A node runs several processes on one store. Case documents in the store are the truth; the desk keeps two
per-process views of them, both kept current by the case command events every process receives
(`cb.event.command.case.>`, no durable, no queue): a cache of recently written cases (an event with a newer
version drops the entry; a failed write drops it too, so a step after a Conflict reads the store) and the
duplicate index of open cases (cases opened on another process are read from the store and added, closed
ones removed).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.bus import Message
from citybrain.cases.catalog import Catalog, Category
from citybrain.cases.model import COLLECTION, FINAL, live_tasks
from citybrain.cases.similar import DuplicateIndex, OpenCase, terms
from citybrain.clock import parse_time
from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.errors import CityBrainError, Conflict, NotFound, ValidationError
from citybrain.events import decode_event
from citybrain.model.places import PlaceIndex
from citybrain.ports import Ports
from citybrain.store import PutDoc
from citybrain.store.base import Op

log = logging.getLogger("citybrain.cases")
EVENTS = ("cb.event.command.case.>", "cb.event.command.matter.>")

# ids of the cases a command attempt read from the cache (set by CaseDesk.run): a refusal based on one of
# them may come from a copy another process has made stale, so the step is tried once more on the store's
_from_cache: ContextVar[set[str] | None] = ContextVar("cases_from_cache", default=None)


def stale_version(exc: CityBrainError) -> bool:
    """Tell whether an error is the store's optimistic version check failing (another writer came first)."""
    return isinstance(exc, Conflict) and "changed (version" in exc.detail

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


class CaseDesk:
    """rt.ports.cases: reads and saves case documents and runs the automatic steps."""

    def __init__(self, rt: CityBrain, catalog: Catalog) -> None:
        self.rt = rt
        self.catalog = catalog
        d = catalog.duplicates
        self.index = DuplicateIndex(d["radius_m"], d["window_hours"], d["text_threshold"])
        # recently written cases: saves a store round trip per step. Entries are dropped by a newer version
        # in a case event from any process, and while their own write is in flight (a write that fails, say
        # on a Conflict, leaves nothing behind), so a stale copy can cause at most one retried attempt
        self.cache: OrderedDict[str, tuple[bytes, int]] = OrderedDict()
        self.cache_size = 20_000
        # newest version of each case announced by an event: a commit of ours that an event of another process
        # overtook must not be cached over it
        self.newest: OrderedDict[str, int] = OrderedDict()

    @property
    def places(self) -> PlaceIndex | None:
        """The city's place index (None in a runtime without the model component)."""
        places: PlaceIndex | None = self.rt.ports.find(Ports.places)
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
    async def find(self, *, state: str | None = None, department: str | None = None, overdue: bool | None = None,
                   category: str | None = None, queue: str | None = None, channel: str | None = None,
                   kind: str | None = None, place: str | None = None) -> list[dict[str, Any]]:
        """Return cases matching every given filter (place: in it or below it), newest first, as stored."""
        from citybrain.cases import views  # views import this module

        return await views.find(self.rt, state=state, department=department, overdue=overdue, category=category,
                                queue=queue, channel=channel, kind=kind, place=place)

    async def load(self, case_id: str, fresh: bool = False) -> tuple[dict[str, Any], int]:
        """Return (a private copy of) a case document and its version, or raise NotFound (fresh: from the store)."""
        hit = None if fresh else self.cache.get(case_id)
        if hit is not None:
            served = _from_cache.get()
            if served is not None:
                served.add(case_id)
            return _dec.decode(hit[0]), hit[1]
        doc = await self.rt.store.get_doc(COLLECTION, case_id)
        if doc is None:
            raise NotFound(f"case {case_id} not found", field="id")
        return doc.data, doc.version

    async def read(self, case_id: str) -> dict[str, Any] | None:
        """Return a case document as stored, or None (reads never answer from the cache)."""
        doc = await self.rt.store.get_doc(COLLECTION, case_id)
        return None if doc is None else doc.data

    def remember(self, case: dict[str, Any], version: int) -> None:
        """Cache a case as committed at `version` (never over a newer version seen meanwhile)."""
        hit = self.cache.get(case["id"])
        if (hit is not None and hit[1] > version) or self.newest.get(case["id"], 0) > version:
            return
        self.cache[case["id"]] = (_enc.encode(case), version)
        self.cache.move_to_end(case["id"])
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)

    def save(self, case: dict[str, Any], version: int, result: Any = None,
             extra: list[PutDoc] | None = None) -> Outcome:
        """Return the outcome that stores a case (optimistically, at `version`) and announces its step."""
        last = case["timeline"][-1] if case["timeline"] else {}
        ops: list[Op] = [PutDoc(COLLECTION, case["id"], case, expect_version=version), *(extra or [])]
        docs = [(case, version)] + [(op.data, op.expect_version or 0) for op in extra or [] if op.collection == COLLECTION]
        # every process's cache and duplicate index follow the versions written here
        written = [{"id": d["id"], "version": v + 1, "state": d["state"], "category": d["category"]} for d, v in docs]
        event = {"case": case["id"], "step": last.get("step"), "state": case["state"], "category": case["category"],
                 "place": case.get("place"), "departments": case.get("departments", []), "note": last.get("note", ""),
                 "written": written}
        for d, _ in docs:  # in flight: if the write fails, the next attempt must not trust the old copy
            self.cache.pop(d["id"], None)

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

    async def on_event(self, msg: Message) -> None:
        """Follow a case command event from any process: drop outdated cached copies, keep the index current."""
        data = decode_event(msg.data).data
        for w in data.get("written") or ():
            case_id, version = str(w["id"]), int(w["version"])
            if version > self.newest.get(case_id, 0):
                self.newest[case_id] = version
                self.newest.move_to_end(case_id)
                while len(self.newest) > self.cache_size:
                    self.newest.popitem(last=False)
            hit = self.cache.get(case_id)
            if hit is not None and hit[1] < version:
                self.cache.pop(case_id, None)
            if w["state"] in FINAL:
                self.index.remove(case_id, str(w["category"]))
            elif case_id not in self.index.by_category.get(str(w["category"]), {}):
                # opened (or reopened) on another process: its text and place are in the store, not the event
                doc = await self.rt.store.get_doc(COLLECTION, case_id)
                if doc is not None and doc.data["state"] not in FINAL:
                    self.track(doc.data)
                    if data.get("step") in ("intake", "apply"):
                        self.index.text.learn(terms(f"{doc.data.get('title', '')} {doc.data.get('description', '')}"))

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
        """Execute a case command; when it lost a version race, or was refused on a cached copy, drop the copy and
        try again on the stored case (a refusal on fresh state stands)."""
        for attempt in range(retries):
            served: set[str] = set()
            token = _from_cache.set(served)
            try:
                return await self.rt.execute(name, payload, ctx)
            except CityBrainError as exc:
                for case_id in served:
                    self.cache.pop(case_id, None)
                retry = stale_version(exc) or (bool(served) and not isinstance(exc, ValidationError))
                if not retry or attempt == retries - 1:
                    raise
                log.debug("%s on %s: %s; trying again on the stored case", name, payload.get("id"), exc.detail)
            finally:
                _from_cache.reset(token)
        return None

    async def submit(self, payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
        """Take a report from any channel: intake, then (for trusted channels) file and route automatically."""
        result: dict[str, Any] = await self.run("case.intake", payload, ctx)
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
    desk = rt.ports.own(Ports.cases, CaseDesk)
    return desk

"""The alert book: turns rule and detector signals into grouped, de-duplicated, suppressible alerts.

One alert per (category, community) while it is open: forty rain gauges going red in one community
make one flood alert with forty members, not forty alerts. A rising level raises the alert's severity
(event alert.escalated); when every member has cleared and stayed clear for `resolve_after` seconds of
data time, the alert resolves itself (event alert.resolved). Signals inside a maintenance window
(alert.suppress) are counted but raise nothing. Alerts are Smart Data Models `Alert` documents kept
in the store collection "alerts".

On a node of several processes the documents are the truth. The pipeline that raised an alert keeps it in
memory and writes it behind (the outbox); the commands (ack, escalate, resolve, link) run on any process
against the stored document with a version check, and every process applies their events to the alerts it
holds, so the raising process's next pipeline write carries the change, and a write of its that overtook the
command is written again with the change merged in. Maintenance windows reach every process the same way.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.bus import Message
from citybrain.clock import epoch, iso_of
from citybrain.context import Context, new_id
from citybrain.errors import Conflict
from citybrain.events import decode_event
from citybrain.outbox import Outbox
from citybrain.signals import RANK, SEVERITY, Signal
from citybrain.store import PutDoc
from citybrain.store.base import Doc

if TYPE_CHECKING:
    from citybrain.obs import Located
    from citybrain.runtime import CityBrain

COLLECTION = "alerts"
SUPPRESSIONS = "alert_suppressions"
OPEN = ("raised", "acknowledged", "escalated")
MAX_MEMBERS = 200


class AlertBook:
    """Open alerts in memory (by group), every change written to the store and published as an event."""

    def __init__(self, rt: CityBrain, resolve_after: float = 3600.0) -> None:
        self.rt = rt
        self.resolve_after = resolve_after
        self.open: dict[tuple[str, str], dict[str, Any]] = {}
        self.by_id: dict[str, dict[str, Any]] = {}
        self.suppressions: list[dict[str, Any]] = []
        self.suppressed = 0
        self.raised = 0
        self.latest_ts = 0.0
        self.held: dict[str, Signal] = {}  # suppressed signals that are still active
        self.outbox = Outbox(rt)
        self.owned: set[str] = set()  # alerts this process's pipeline has written (its copy is the freshest)
        self.known: OrderedDict[str, None] = OrderedDict()  # alerts raised on any process (from alert.raised)
        extra = rt.settings.extra
        # how long a command waits for the document of an alert raised elsewhere (still in that process's
        # outbox, a few ms behind its event): long for an alert seen raised, short for an id never seen
        self.wait = float(extra.get("alert_doc_wait", 2.0))
        self.grace = float(extra.get("alert_doc_grace", 0.2))

    async def load(self, alerts: bool = True) -> None:
        """Read maintenance windows and (alerts=True: one pipeline holds every partition) open alerts back."""
        if alerts:
            for doc in await self._open_docs():
                self._remember(restore(doc.data))
        self.suppressions = [d.data for d in await self.rt.store.list_docs(SUPPRESSIONS, limit=100_000)]

    async def _open_docs(self) -> list[Doc]:
        return [doc for status in OPEN
                for doc in await self.rt.store.list_docs(COLLECTION, {"status": status}, limit=100_000)]

    # pipeline partitions (citybrain.situation.partitions): the open alerts of a partition are held by its owner
    def part_of(self, alert: dict[str, Any]) -> int:
        """Return the pipeline partition an alert's signals arrive on (that of its community)."""
        pipeline = self.rt.ports.pipeline
        if alert.get("community"):
            return int(pipeline.part_of_community(alert["community"]))
        return int(pipeline.part_of_place(alert.get("place")))

    async def take_partition(self, n: int) -> None:
        """This process now runs partition n: hold its open alerts as stored (the last owner flushed them)."""
        for doc in await self._open_docs():
            if doc.id not in self.by_id and self.part_of(doc.data) == n:
                self._remember(restore(doc.data))
                self.owned.add(doc.id)  # ours to write from now on

    async def leave_partition(self, n: int) -> None:
        """Partition n moved away: write out what is queued, then forget its alerts and held signals."""
        await self.outbox.flush()
        for alert_id, alert in list(self.by_id.items()):
            if self.part_of(alert) == n:
                del self.by_id[alert_id]
                self.owned.discard(alert_id)
                key = (alert["category"], alert["group"])
                if self.open.get(key) is alert:
                    del self.open[key]
        pipeline = self.rt.ports.pipeline
        for member, sig in list(self.held.items()):
            if (pipeline.part_of_community(sig.community) if sig.community else pipeline.part_of_place(sig.place)) == n:
                del self.held[member]

    # the node's other processes ---------------------------------------------------------------
    async def fetch(self, alert_id: str) -> Doc | None:
        """Return an alert's stored document, waiting a moment for one raised on another process."""
        await self.outbox.flush()  # ours first: queued pipeline writes commit before any command's
        loop = asyncio.get_running_loop()
        # real time, not the runtime clock: this waits for another process's commit, which a fake clock never moves
        until = loop.time() + (self.wait if alert_id in self.known or alert_id in self.by_id else self.grace)
        while True:
            doc = await self.rt.store.get_doc(COLLECTION, alert_id)
            if doc is not None or loop.time() >= until:
                return doc
            await asyncio.sleep(0.02)

    async def run(self, name: str, payload: dict[str, Any], ctx: Context, retries: int = 5) -> Any:
        """Execute an alert command, again on the fresh document when a pipeline write came in between."""
        for attempt in range(retries):
            try:
                return await self.rt.execute(name, payload, ctx)
            except Conflict as exc:
                if "changed (version" not in exc.detail or attempt == retries - 1:
                    raise
        return None

    async def on_raised(self, msg: Message) -> None:
        """Note an alert raised on any process (its document may follow a few ms later)."""
        alert_id = str(decode_event(msg.data).data.get("alert_id", ""))
        if alert_id:
            self.known[alert_id] = None
            while len(self.known) > 100_000:
                self.known.popitem(last=False)

    async def on_command(self, msg: Message) -> None:
        """Apply an alert command of any process to the alert held here (if any)."""
        event = decode_event(msg.data)
        if event.type == "command.alert.suppress":
            window = event.data.get("window")
            if isinstance(window, dict):
                self.add_window(window)
            return
        change = event.data.get("change")
        if isinstance(change, dict):
            await self.apply(change)

    async def apply(self, change: dict[str, Any]) -> None:
        """Merge a committed command's change into the in-memory alert; write it again if our pipeline owns it."""
        alert = self.by_id.get(str(change.get("alert_id")))
        if alert is None:
            return
        entry = change.get("entry")
        if entry is not None:
            if any(h.get("ref") == entry.get("ref") for h in alert["history"]):
                return  # applied already (this process ran the command, or the event came twice)
            alert["history"].append(entry)
        elif alert.get("case") == change.get("case"):
            return
        if alert["status"] != "resolved":  # resolved here in the meantime: it stays resolved
            alert["status"] = change["status"]
            for name in ("warningLevel", "severity", "validTo"):
                if change.get(name) is not None:
                    alert[name] = change[name]
        if change.get("case") is not None:
            alert["case"] = change["case"]
        if alert["status"] == "resolved":
            key = (alert["category"], alert["group"])
            if self.open.get(key) is alert:
                del self.open[key]
        if alert["id"] in self.owned:  # a pipeline write of ours may have overtaken the command: write again
            await self._save(alert)

    def add_window(self, window: dict[str, Any]) -> None:
        """Add a maintenance window (once, whichever process recorded it)."""
        if all(w["id"] != window["id"] for w in self.suppressions):
            self.suppressions.append(window)

    def _remember(self, alert: dict[str, Any]) -> None:
        self.by_id[alert["id"]] = alert
        if alert["status"] in OPEN:
            self.open[(alert["category"], alert["group"])] = alert

    # suppression -----------------------------------------------------------------------------
    def is_suppressed(self, sig: Signal) -> dict[str, Any] | None:
        """Return the maintenance window covering this signal's source and time, if any."""
        within = self.rt.ports.places.within
        for s in self.suppressions:
            if not s["from_ts"] <= sig.ts < s["until_ts"]:
                continue
            target = s["target"]
            if target in (sig.entity, sig.unit) or (sig.place and within(sig.place, target)) or (
                    sig.community and within(sig.community, target)):
                return s
        return None

    # signals ---------------------------------------------------------------------------------
    async def on_signals(self, signals: list[Signal]) -> None:
        """Apply a batch of signals: raise, group, escalate, clear."""
        for sig in signals:
            self.latest_ts = max(self.latest_ts, sig.ts)
            group = sig.community or sig.place or sig.unit
            alert = self.open.get((sig.category, group))
            member_key = f"{sig.source_id}|{sig.unit}"
            if sig.level == "none":
                self.held.pop(member_key, None)
                if alert is not None and member_key in alert["_active"]:
                    alert["_active"].discard(member_key)
                    self._member(alert, sig, member_key)
                    if not alert["_active"]:
                        alert["clearedAt"] = sig.observed_at
                    await self._save(alert)
                continue
            if self.is_suppressed(sig) is not None:
                self.suppressed += 1
                self.held[member_key] = sig  # raised when the window ends if it is still active
                continue
            self.held.pop(member_key, None)
            if alert is None:
                await self._raise(sig, group, member_key)
                continue
            alert["_active"].add(member_key)
            alert["clearedAt"] = None
            alert["signals"] += 1
            self._member(alert, sig, member_key)
            if RANK[sig.level] > RANK[alert["warningLevel"]]:
                before = alert["warningLevel"]
                alert["warningLevel"], alert["severity"] = sig.level, SEVERITY[sig.level]
                alert["description"] = self._describe(sig, alert)
                alert["history"].append({"status": "severity", "from": before, "to": sig.level,
                                         "time": self.rt.now(), "actor": "system", "data_time": sig.observed_at})
                await self._save(alert)
                await self.outbox.emit("alert.escalated", {**self.event_data(alert), "from": before, "auto": True})
            else:
                await self._save(alert)
        await self.expire(self.latest_ts)

    async def on_rows(self, located: list[Located]) -> None:
        """Advance data time from the observation stream so cleared alerts resolve even when nothing else fires."""
        if located:
            self.latest_ts = max(self.latest_ts, max(item.ts for item in located))
            await self.expire(self.latest_ts)

    async def expire(self, now_ts: float) -> None:
        """Resolve open alerts clear for resolve_after seconds; raise held signals whose window has ended."""
        if self.held:
            due = [sig for sig in self.held.values() if self.is_suppressed(_at(sig, now_ts)) is None]
            if due:
                for sig in due:
                    self.held.pop(f"{sig.source_id}|{sig.unit}", None)
                await self.on_signals([_at(sig, now_ts) for sig in due])
        for alert in list(self.open.values()):
            cleared = alert.get("clearedAt")
            if cleared and not alert["_active"] and now_ts - epoch(cleared) >= self.resolve_after:
                await self.resolve(alert, "system", "all sources back to normal", cleared)

    def _member(self, alert: dict[str, Any], sig: Signal, key: str) -> None:
        members = alert["members"]
        entry = {"key": key, "source": sig.source, "sourceId": sig.source_id, "unit": sig.unit, "entity": sig.entity,
                 "place": sig.place, "level": sig.level, "observedAt": sig.observed_at, "quantity": sig.quantity,
                 "value": sig.value, "evidence": sig.evidence, "active": True}
        for i, m in enumerate(members):
            if m["key"] == key and sig.level == "none":  # cleared: keep what fired, note when it ended
                m.update(active=False, clearedAt=sig.observed_at, lastValue=sig.value)
                return
            if m["key"] == key:
                entry["peak"] = max((m.get("peak", m["level"]), sig.level), key=lambda x: RANK.get(x, 0))
                members[i] = entry
                return
        if len(members) < MAX_MEMBERS:
            members.append(entry)

    def _describe(self, sig: Signal, alert: dict[str, Any]) -> str:
        n = len(alert["_active"]) if alert else 1
        where = sig.community or sig.place or sig.unit
        return (f"{sig.rule_name or sig.source_id}: {sig.level} at {where} — "
                f"{'; '.join(sig.evidence) or sig.quantity} (from {sig.entity or sig.unit}"
                f"{f' and {n - 1} more sources' if n > 1 else ''}, observed {sig.observed_at})")

    async def _raise(self, sig: Signal, group: str, member_key: str) -> None:
        alert_id = f"urn:ngsi-ld:Alert:{new_id()}"
        alert: dict[str, Any] = {
            "id": alert_id, "type": "Alert", "category": sig.category, "subCategory": sig.sub_category or sig.quantity,
            "severity": SEVERITY[sig.level], "warningLevel": sig.level, "description": "",
            "alertSource": sig.entity or sig.unit, "dateIssued": self.rt.now(), "validFrom": sig.observed_at,
            "validTo": None, "status": "raised", "group": group, "place": sig.place, "community": sig.community,
            "rule": sig.source_id if sig.source == "rule" else None,
            "detector": sig.source_id if sig.source == "detector" else None,
            "signals": 1, "members": [], "history": [], "case": None, "clearedAt": None,
        }
        alert["_active"] = {member_key}
        alert["description"] = self._describe(sig, alert)
        self._member(alert, sig, member_key)
        alert["history"].append({"status": "raised", "time": alert["dateIssued"], "actor": "system",
                                 "data_time": sig.observed_at})
        self._remember(alert)
        self.raised += 1
        await self._save(alert)
        await self.outbox.emit("alert.raised", self.event_data(alert))

    async def resolve(self, alert: dict[str, Any], actor: str, note: str = "", data_time: str | None = None) -> None:
        """Close an alert and publish alert.resolved."""
        alert["status"] = "resolved"
        alert["validTo"] = data_time or self.rt.now()
        alert["history"].append({"status": "resolved", "time": self.rt.now(), "actor": actor, "note": note})
        self.open.pop((alert["category"], alert["group"]), None)
        await self._save(alert)
        await self.outbox.emit("alert.resolved", {**self.event_data(alert), "actor": actor, "note": note})

    def event_data(self, alert: dict[str, Any]) -> dict[str, Any]:
        """Return the data of alert events (what the cases component subscribes to)."""
        return {"alert_id": alert["id"], "category": alert["category"], "subCategory": alert["subCategory"],
                "place": alert["place"], "community": alert["community"], "severity": alert["severity"],
                "warningLevel": alert["warningLevel"], "description": alert["description"],
                "rule": alert["rule"] or alert["detector"], "source": "rule" if alert["rule"] else "detector",
                "alertSource": alert["alertSource"], "validFrom": alert["validFrom"], "status": alert["status"],
                "sources": len(alert["members"])}

    @staticmethod
    def public(alert: dict[str, Any]) -> dict[str, Any]:
        """Return the stored/served form of an alert (internal fields dropped)."""
        out = {k: v for k, v in alert.items() if not k.startswith("_")}
        out["activeSources"] = sorted(alert.get("_active", ()))
        return out

    async def _save(self, alert: dict[str, Any]) -> None:
        self.owned.add(alert["id"])
        self.outbox.write(PutDoc(COLLECTION, alert["id"], self.public(alert)))


def _at(sig: Signal, ts: float) -> Signal:
    """Return the signal as if seen again at ts."""
    return msgspec.structs.replace(sig, ts=ts, observed_at=iso_of(ts))


def restore(doc: dict[str, Any]) -> dict[str, Any]:
    """Rebuild the in-memory form of a stored alert."""
    alert = dict(doc)
    alert["_active"] = set(alert.pop("activeSources", []) or [])
    return alert

"""Reports and indicators up (下情上达), and the default keepers of every other message kind.

A community sends scheduled reports at its cadence (``report_cadence`` seconds in normal operation,
``emergency_report_cadence`` while its area is in an emergency mode); a ``config`` or ``mode.change``
message from the city changes the cadence. Kinds other components own (cases, modes, plans, grants,
catalog) are kept as documents here until those components register their own handlers.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.federation.messages import FedMessage
from citybrain.ports import Ports
from citybrain.store import EntityQuery
from citybrain.store.base import Op, PutDoc

if TYPE_CHECKING:
    from citybrain.federation.service import Federation
    from citybrain.runtime import CityBrain

REPORTS = "fed_reports"
CONFIG = "fed_config"
DEFAULT_CONFIG: dict[str, Any] = {"report_cadence": 3600, "emergency_report_cadence": 300, "mode": "normal"}
# down kind -> collection its payload is kept in (until the owning component registers a handler)
KEPT: dict[str, str] = {"plan.task": "fed_tasks", "grant": "fed_grants", "catalog.update": "fed_catalog",
                        "case.escalate": "fed_escalations"}


class Submit(msgspec.Struct, kw_only=True):
    """A community report to the city."""

    text: str = ""
    type: Literal["adhoc", "scheduled", "emergency"] = "adhoc"
    data: dict[str, Any] = {}


async def indicators(rt: CityBrain, area: str) -> dict[str, Any]:
    """Return aggregated indicators of an area: entities by type inside it."""
    places = rt.ports.find(Ports.places)
    cells = [area, *places.descendants(area)] if places is not None and area in places else [area]
    found = await rt.store.query_entities(EntityQuery(places=cells, limit=100000))
    by_type: dict[str, int] = {}
    for e in found:
        by_type[e.type] = by_type.get(e.type, 0) + 1
    return {"area": area, "entities": len(found), "by_type": by_type, "at": rt.now()}


async def submit(rt: CityBrain, cmd: Submit, ctx: Context) -> Outcome:
    """Community: keep a report and queue it up (one transaction)."""
    from citybrain.federation.service import Federation  # the service imports this module

    fed = rt.ports.own(Ports.federation, Federation)
    payload = {"text": cmd.text, "type": cmd.type, "data": cmd.data, "area": rt.settings.area, "at": rt.now()}
    op = fed.up_op("report", payload, ctx)
    msg_id = str(op.data["msg"]["id"])
    return Outcome(ops=[PutDoc(REPORTS, msg_id, dict(payload, id=msg_id, sender=rt.node_id)), op],
                   result={"id": msg_id, **payload}, event={"report": msg_id, "type": cmd.type})


async def config_of(rt: CityBrain) -> dict[str, Any]:
    """Return the node's federation configuration (cadences, mode, thresholds, categories)."""
    doc = await rt.store.get_doc(CONFIG, "local")
    return {**DEFAULT_CONFIG, **(doc.data if doc else {})}


async def cadence(rt: CityBrain) -> float:
    """Return the current report cadence in seconds (emergency cadence in an emergency mode)."""
    cfg = await config_of(rt)
    emergency = str(cfg.get("mode", "normal")).startswith("emergency")
    return float(cfg["emergency_report_cadence"] if emergency else cfg["report_cadence"])


async def scheduled_reports(rt: CityBrain) -> None:
    """Community: send a scheduled report with the area's indicators at the configured cadence."""
    waited = 0.0
    while True:
        await asyncio.sleep(0.5)
        waited += 0.5
        every = await cadence(rt)
        if waited < every:
            continue
        waited = 0.0
        cfg = await config_of(rt)
        kind = "emergency" if str(cfg.get("mode", "")).startswith("emergency") else "scheduled"
        data = await indicators(rt, rt.settings.area)
        await rt.execute("report.submit", {"type": kind, "text": f"{kind} report", "data": data},
                         rt.context("federation:schedule"))


def setup_reports(rt: CityBrain, fed: Federation) -> None:
    """Register report commands, the default handlers of every kind, and the report schedule."""
    rt.commands.register("report.submit", Submit, submit, "send a community report up to the city")

    async def on_hello(msg: FedMessage) -> list[Op]:
        data = {"node": msg.sender, "area": msg.payload.get("area", ""), "role": "community",
                "hello_at": rt.now()}
        fed.known[msg.sender] = data
        return [PutDoc("fed_nodes", msg.sender, data)]

    async def on_report(msg: FedMessage) -> list[Op]:
        return [PutDoc(REPORTS, msg.id, dict(msg.payload, id=msg.id, sender=msg.sender, seq=msg.seq,
                                             received_at=rt.now()))]

    async def on_indicators(msg: FedMessage) -> list[Op]:
        return [PutDoc("fed_indicators", msg.sender, dict(msg.payload, received_at=rt.now()))]

    async def on_config(msg: FedMessage) -> list[Op]:
        cfg = await config_of(rt)
        change = msg.payload if msg.kind == "config" else {"mode": msg.payload.get("mode", "normal")}
        return [PutDoc(CONFIG, "local", {**cfg, **change, "changed_by": msg.id})]

    def keeper(collection: str) -> Any:
        async def keep(msg: FedMessage) -> list[Op]:
            return [PutDoc(collection, msg.id, dict(msg.payload, sender=msg.sender, received_at=rt.now()))]
        return keep

    for kind, fn in (("node.hello", on_hello), ("report", on_report), ("indicators", on_indicators),
                     ("config", on_config), ("mode.change", on_config)):
        fed.register_handler(kind, fn)
    for kind, collection in KEPT.items():
        fed.register_handler(kind, keeper(collection))
    if fed.role == "community":
        rt.cluster.singleton("federation-reports", lambda: scheduled_reports(rt))

"""What an area's operators see of federation: its reports, and the directives sent to it with their receipts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from citybrain.federation.directives import DIRECTIVE_DOCS, DIRECTIVES, RECEIPT_DOCS, RECEIPTS
from citybrain.federation.reports import REPORTS

if TYPE_CHECKING:
    from citybrain.federation.service import Federation
    from citybrain.runtime import CityBrain


async def area_view(rt: CityBrain, fed: Federation, within: str | None) -> dict[str, Any]:
    """Return an area's reports (newest first) and the directives sent to it with their receipts."""
    places = rt.ports.places

    def inside(area: Any) -> bool:
        if not within:
            return True
        return isinstance(area, str) and area in places and (places.within(area, within) or places.within(within, area))

    reports = [d.data for d in await rt.store.list_docs(REPORTS, limit=100_000)]
    reports = [r for r in reports if inside(r.get("area"))]
    reports.sort(key=lambda r: str(r.get("at") or r.get("received_at") or ""), reverse=True)
    community = rt.settings.role == "community"
    area_nodes = {n: d.get("area") for n, d in getattr(fed, "known", {}).items()}
    done: dict[str, dict[str, dict[str, Any]]] = {}
    if not community:
        for r in await rt.store.list_docs(RECEIPTS, limit=100_000):
            got = RECEIPT_DOCS.load(r.data)
            done.setdefault(got.directive, {}).setdefault(got.node, {})[got.state] = got.at
    directives = []
    for d in await rt.store.list_docs(DIRECTIVES, limit=100_000):
        directive = DIRECTIVE_DOCS.load(d.data)
        data = DIRECTIVE_DOCS.dump(directive)
        if community:
            nodes = {rt.node_id: {"read": directive.read_at, "done": directive.done_at}}
        else:
            nodes = {n: {"read": done.get(d.id, {}).get(n, {}).get("read"),
                         "done": done.get(d.id, {}).get(n, {}).get("done")} for n in directive.nodes}
            if within:
                nodes = {n: v for n, v in nodes.items() if inside(area_nodes.get(n))}
                if not nodes and not inside(data.get("target")):
                    continue
        waiting = [n for n, v in nodes.items() if not v["done"]]
        directives.append({k: data.get(k) for k in ("id", "kind", "text", "target", "due", "issued_at", "actor",
                                                     "received_at")}
                          | {"nodes": nodes, "read": sum(1 for v in nodes.values() if v["read"]),
                             "done": sum(1 for v in nodes.values() if v["done"]), "waiting": waiting})
    directives.sort(key=lambda x: str(x.get("issued_at") or x.get("received_at") or ""), reverse=True)
    return {"available": True, "role": rt.settings.role, "reports": reports[:50], "reports_total": len(reports),
            "directives": directives[:50], "directives_waiting": sum(1 for x in directives if x["waiting"])}

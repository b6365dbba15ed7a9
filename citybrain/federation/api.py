"""The federation HTTP API: nodes, directives and receipts, reports, outbox, inbox and the link switch."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request, Response

from citybrain.api.routes import context_of, json, read_json, rt_of
from citybrain.errors import ValidationError
from citybrain.federation import directives
from citybrain.federation.inbox import INBOX
from citybrain.federation.reports import REPORTS, config_of
from citybrain.federation.scope import AreaScope
from citybrain.federation.service import Federation
from citybrain.ports import Ports
from citybrain.runtime import CityBrain

router = APIRouter(prefix="/api/v1", tags=["federation"])


def fed_of(request: Request) -> Federation:
    """Return the federation service of the node serving this request."""
    fed = rt_of(request).ports.own(Ports.federation, Federation)
    return fed


@router.get("/nodes")
async def nodes(request: Request) -> Response:
    """List this node and the nodes it links to, with link status and backlog."""
    return json(await fed_of(request).nodes())


@router.get("/federation")
async def federation(request: Request) -> Response:
    """Return this node's federation state: role, area, link, receiver counters, configuration."""
    rt, fed = rt_of(request), fed_of(request)
    return json({"node": rt.node_id, "role": fed.role, "area": fed.area, "prefix": fed.prefix,
                 "link": fed.link.status(), "receiver": fed.receiver.stats(), "sent": fed.outbox.sent,
                 "config": await config_of(rt), "kpis": await fed.kpis()})


@router.post("/federation/link")
async def link_switch(request: Request) -> Response:
    """Cut ({"up": false}) or restore ({"up": true}) this node's link to the federation."""
    body = await read_json(request)
    fed = fed_of(request)
    if body.get("up"):
        await fed.link.restore()
    else:
        await fed.link.cut()
    return json(fed.link.status())


@router.post("/federation/send", status_code=202)
async def send(request: Request) -> Response:
    """Queue a typed message: up (community) or down to {"target"} (city)."""
    body = await read_json(request)
    fed = fed_of(request)
    kind, payload = str(body.get("kind", "")), body.get("payload") or {}
    if not kind or not isinstance(payload, dict):
        raise ValidationError("kind and an object payload are required", field="kind")
    ctx = context_of(request)
    ids = [await fed.send_up(kind, payload, ctx)] if fed.role == "community" else \
        await fed.send_down(str(body.get("target", "*")), kind, payload, ctx)
    return json({"ids": ids}, status=202)


@router.get("/federation/inbox")
async def inbox(request: Request, sender: str | None = None, limit: int = Query(1000, ge=1, le=100000),
                offset: int = Query(0, ge=0)) -> Response:
    """List applied messages (id, sender, seq, kind, apply order)."""
    docs = await rt_of(request).store.list_docs(INBOX, where={"sender": sender} if sender else None,
                                                limit=limit, offset=offset)
    rows = [dict(d.data, id=d.id) for d in docs]
    return json(sorted(rows, key=lambda r: (r.get("n", 0), r["seq"])))


@router.get("/outbox")
async def outbox(request: Request, limit: int = Query(1000, ge=1, le=100000)) -> Response:
    """List messages waiting to go up or down, oldest first, with the backlog per channel."""
    fed = fed_of(request)
    docs = await fed.outbox.waiting(limit)
    rows = [{"key": d.id, "id": d.data["msg"]["id"], "channel": d.data["channel"], "to": d.data["to"],
             "kind": d.data["kind"], "seq": d.data["seq"], "created": d.data["msg"]["created"]} for d in docs]
    return json({"backlog": await fed.outbox.backlog(), "link": fed.link.status()["state"], "messages": rows})


@router.post("/directives", status_code=201)
async def issue(request: Request) -> Response:
    """Issue a directive: {"target": community URN or node id, "text": …} (city node)."""
    rt = rt_of(request)
    body = await read_json(request)
    result = await rt.execute("directive.issue", body, context_of(request))
    return json(result, status=201, headers={"Location": f"/api/v1/directives/{result['id']}/receipts"})


@router.get("/directives")
async def listing(request: Request, limit: int = Query(1000, ge=1, le=100000)) -> Response:
    """List directives (city: issued; community: received, with read / done times)."""
    docs = await rt_of(request).store.list_docs(directives.DIRECTIVES, limit=limit)
    typed = directives.DIRECTIVE_DOCS
    return json([typed.dump(typed.load(d.data)) for d in docs])


@router.get("/directives/{directive_id}/receipts")
async def receipts(request: Request, directive_id: str) -> Response:
    """Return who has read and done a directive."""
    return json(await directives.receipts(rt_of(request), directive_id))


@router.post("/directives/{directive_id}/{state}")
async def acknowledge(request: Request, directive_id: str, state: str) -> Response:
    """Mark a received directive read or done (community node); the receipt goes up."""
    if state not in ("read", "done"):
        raise ValidationError("state must be read or done", field="state")
    rt = rt_of(request)
    body: dict[str, Any] = {}
    if await request.body():
        body = await read_json(request)
    result = await rt.execute("directive.receipt", {"id": directive_id, "state": state,
                                                    "note": str(body.get("note", ""))},
                              context_of(request))
    return json(result)


@router.get("/reports")
async def reports(request: Request, sender: str | None = None, limit: int = Query(1000, ge=1, le=100000),
                  offset: int = Query(0, ge=0)) -> Response:
    """List reports (city: received from communities; community: its own)."""
    docs = await rt_of(request).store.list_docs(REPORTS, where={"sender": sender} if sender else None,
                                                limit=limit, offset=offset)
    return json([d.data for d in docs])


@router.post("/reports", status_code=201)
async def submit(request: Request) -> Response:
    """Send a report up to the city (community node): {"text", "type", "data"}."""
    rt = rt_of(request)
    body = await read_json(request)
    return json(await rt.execute("report.submit", body, context_of(request)), status=201)


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Add the federation routes (and, on a community node, confine every request to its area)."""
    from citybrain.trust.policy import add_family

    add_family("/api/v1/outbox", "federation")
    app.include_router(router)
    if rt.settings.role == "community" and rt.settings.area:
        app.add_middleware(AreaScope, rt=rt)

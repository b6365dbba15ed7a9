"""Directives and notices down (上情下达), with read and done receipts back up.

City: ``directive.issue`` stores the directive and queues one message per target node in the same
transaction; ``directive.receipt`` messages arriving up become ``fed_receipts`` documents (one per node and
state, so receipts of several nodes never overwrite each other). Community: a received directive is
stored; ``directive.receipt`` (read / done) updates it and queues the receipt up, again in one transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgspec

from citybrain.commands import Outcome
from citybrain.context import Context, new_id
from citybrain.documents import Document, DocumentType
from citybrain.errors import NotFound, ValidationError
from citybrain.federation.messages import FedMessage
from citybrain.ports import Ports
from citybrain.store.base import Op

if TYPE_CHECKING:
    from citybrain.federation.service import Federation
    from citybrain.runtime import CityBrain

class Directive(Document, kw_only=True):
    """A directive or notice as the city issued it; a community's copy adds when it arrived, was read and done."""

    id: str
    kind: Literal["directive", "notice"] = "directive"
    text: str
    target: str
    nodes: list[str] = []  # the community nodes it went to (city)
    due: str | None = None
    issued_at: str = ""
    actor: str = ""
    origin: str = ""
    received_at: str | None = None  # community: when it arrived
    read_at: str | None = None
    done_at: str | None = None
    sender: str | None = None


class DirectiveReceipt(Document, kw_only=True):
    """City: one node's read or done receipt of one directive."""

    directive: str
    node: str
    state: Literal["read", "done"]
    at: str | None = None
    actor: str | None = None
    note: str = ""
    received_at: str = ""
    message: str = ""


DIRECTIVE_DOCS = DocumentType("fed_directives", Directive, version=1)
RECEIPT_DOCS = DocumentType("fed_receipts", DirectiveReceipt, version=1,
                            key=lambda r: f"{r.directive}:{r.node}:{r.state}")
DIRECTIVES = DIRECTIVE_DOCS.collection
RECEIPTS = RECEIPT_DOCS.collection


class Issue(msgspec.Struct, kw_only=True):
    """Issue a directive (or a notice) to a community node, a place (every node inside it) or '*'."""

    target: str
    text: str
    kind: Literal["directive", "notice"] = "directive"
    due: str | None = None


class Receipt(msgspec.Struct, kw_only=True):
    """Acknowledge a received directive: read, or done (done implies read)."""

    id: str
    state: Literal["read", "done"]
    note: str = ""


def fed_of(rt: CityBrain) -> Federation:
    """Return the node's federation service."""
    from citybrain.federation.service import Federation  # the service imports this module

    return rt.ports.own(Ports.federation, Federation)


async def issue(rt: CityBrain, cmd: Issue, ctx: Context) -> Outcome:
    """City: store a directive and queue it to every target node (one transaction)."""
    fed = fed_of(rt)
    if not cmd.text.strip():
        raise ValidationError("text: a directive needs text", field="text")
    await fed.refresh_nodes()  # a hello may have been applied on another process of the node
    nodes = fed.resolve(cmd.target)
    made = Directive(id=new_id(), kind=cmd.kind, text=cmd.text, target=cmd.target, nodes=nodes, due=cmd.due,
                     issued_at=rt.now(), actor=ctx.actor, origin=rt.node_id)
    directive = DIRECTIVE_DOCS.dump(made)
    ops: list[Op] = [DIRECTIVE_DOCS.put(made, expect_version=0)]
    ops += fed.down_ops(cmd.target, cmd.kind, directive, ctx)
    return Outcome(ops=ops, result=directive, event={"directive": made.id, "nodes": nodes})


async def receipt(rt: CityBrain, cmd: Receipt, ctx: Context) -> Outcome:
    """Community: mark a directive read or done and queue the receipt(s) up (one transaction)."""
    fed = fed_of(rt)
    doc = await rt.store.get_doc(DIRECTIVES, cmd.id)
    if doc is None:
        raise NotFound(f"directive {cmd.id} not found", field="id")
    directive = DIRECTIVE_DOCS.load(doc.data)
    now = rt.now()
    ops: list[Op] = []
    states = ["read", "done"] if cmd.state == "done" and not directive.read_at else [cmd.state]
    for state in states:
        if getattr(directive, f"{state}_at"):
            continue  # a receipt is sent once
        setattr(directive, f"{state}_at", now)
        ops.append(fed.up_op("directive.receipt", {"directive": cmd.id, "state": state, "at": now,
                                                   "actor": ctx.actor, "note": cmd.note}, ctx))
    ops.insert(0, DIRECTIVE_DOCS.put(directive, expect_version=doc.version))
    return Outcome(ops=ops, result=DIRECTIVE_DOCS.dump(directive), event={"directive": cmd.id, "state": cmd.state})


async def on_directive(rt: CityBrain, msg: FedMessage) -> list[Op]:
    """Community: keep a received directive or notice, waiting for read / done."""
    directive = DIRECTIVE_DOCS.load(msg.payload)  # as the city wrote it (an older city's too)
    directive.received_at, directive.read_at, directive.done_at, directive.sender = rt.now(), None, None, msg.sender
    return [DIRECTIVE_DOCS.put(directive)]


async def on_receipt(rt: CityBrain, msg: FedMessage) -> list[Op]:
    """City: keep a read or done receipt of one node."""
    p = msg.payload
    return [RECEIPT_DOCS.put(DirectiveReceipt(directive=p["directive"], node=msg.sender, state=p["state"],
                                              at=p.get("at"), actor=p.get("actor"), note=p.get("note", ""),
                                              received_at=rt.now(), message=msg.id))]


async def receipts(rt: CityBrain, directive_id: str) -> dict[str, Any]:
    """Return who has read and done a directive (city), or its local state (community)."""
    doc = await rt.store.get_doc(DIRECTIVES, directive_id)
    if doc is None:
        raise NotFound(f"directive {directive_id} not found", field="id")
    directive = DIRECTIVE_DOCS.load(doc.data)
    shown = DIRECTIVE_DOCS.dump(directive)
    if rt.settings.role == "community":
        return {"directive": shown, "nodes": {rt.node_id: {"read": directive.read_at, "done": directive.done_at}}}
    nodes: dict[str, dict[str, Any]] = {n: {"read": None, "done": None} for n in directive.nodes}
    for r in await rt.store.list_docs(RECEIPTS, where={"directive": directive_id}, limit=100000):
        got = RECEIPT_DOCS.load(r.data)
        nodes.setdefault(got.node, {"read": None, "done": None})[got.state] = got.at
    return {"directive": shown, "nodes": nodes,
            "read": sum(1 for v in nodes.values() if v["read"]), "done": sum(1 for v in nodes.values() if v["done"])}


async def waiting(rt: CityBrain) -> int:
    """Count directives not yet done (city: by every target node; community: locally)."""
    found = [DIRECTIVE_DOCS.load(d.data) for d in await rt.store.list_docs(DIRECTIVES, limit=100000)]
    if rt.settings.role == "community":
        return sum(1 for d in found if not d.done_at)
    done: dict[str, set[str]] = {}
    for r in await rt.store.list_docs(RECEIPTS, where={"state": "done"}, limit=100000):
        got = RECEIPT_DOCS.load(r.data)
        done.setdefault(got.directive, set()).add(got.node)
    return sum(1 for d in found if not set(d.nodes) <= done.get(d.id, set()))


async def _locate_target(rt: CityBrain, cmd: Issue) -> str | None:
    """A directive touches its target: a place, or the area of the community node it names ('*': everywhere)."""
    places = rt.ports.places
    if cmd.target in places:
        return cmd.target
    fed = fed_of(rt)
    await fed.refresh_nodes()
    area = fed.known.get(cmd.target, {}).get("area")
    return area if isinstance(area, str) else None


def setup_directives(rt: CityBrain, fed: Federation) -> None:
    """Register the directive commands and message handlers."""
    rt.commands.register("directive.issue", Issue, issue, "issue a directive or notice to community nodes",
                         roles=("admin", "city_operator", "command_centre"), place=_locate_target)
    rt.commands.register("directive.receipt", Receipt, receipt, "mark a received directive read or done")

    async def _directive(msg: FedMessage) -> list[Op]:
        return await on_directive(rt, msg)

    async def _receipt(msg: FedMessage) -> list[Op]:
        return await on_receipt(rt, msg)

    fed.register_handler("directive", _directive)
    fed.register_handler("notice", _directive)
    fed.register_handler("directive.receipt", _receipt)

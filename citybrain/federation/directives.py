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
from citybrain.errors import NotFound, ValidationError
from citybrain.federation.messages import FedMessage
from citybrain.ports import Ports
from citybrain.store.base import Op, PutDoc

if TYPE_CHECKING:
    from citybrain.federation.service import Federation
    from citybrain.runtime import CityBrain

DIRECTIVES = "fed_directives"
RECEIPTS = "fed_receipts"


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
    directive_id = new_id()
    directive: dict[str, Any] = {"id": directive_id, "kind": cmd.kind, "text": cmd.text, "target": cmd.target, "nodes": nodes,
                 "due": cmd.due, "issued_at": rt.now(), "actor": ctx.actor, "origin": rt.node_id}
    ops: list[Op] = [PutDoc(DIRECTIVES, directive_id, directive, expect_version=0)]
    ops += fed.down_ops(cmd.target, cmd.kind, directive, ctx)
    return Outcome(ops=ops, result=directive, event={"directive": directive_id, "nodes": nodes})


async def receipt(rt: CityBrain, cmd: Receipt, ctx: Context) -> Outcome:
    """Community: mark a directive read or done and queue the receipt(s) up (one transaction)."""
    fed = fed_of(rt)
    doc = await rt.store.get_doc(DIRECTIVES, cmd.id)
    if doc is None:
        raise NotFound(f"directive {cmd.id} not found", field="id")
    data = dict(doc.data)
    now = rt.now()
    ops: list[Op] = []
    states = ["read", "done"] if cmd.state == "done" and not data.get("read_at") else [cmd.state]
    for state in states:
        if data.get(f"{state}_at"):
            continue  # a receipt is sent once
        data[f"{state}_at"] = now
        ops.append(fed.up_op("directive.receipt", {"directive": cmd.id, "state": state, "at": now,
                                                   "actor": ctx.actor, "note": cmd.note}, ctx))
    ops.insert(0, PutDoc(DIRECTIVES, cmd.id, data, expect_version=doc.version))
    return Outcome(ops=ops, result=data, event={"directive": cmd.id, "state": cmd.state})


async def on_directive(rt: CityBrain, msg: FedMessage) -> list[Op]:
    """Community: keep a received directive or notice, waiting for read / done."""
    data = dict(msg.payload, received_at=rt.now(), read_at=None, done_at=None, sender=msg.sender)
    return [PutDoc(DIRECTIVES, str(msg.payload["id"]), data)]


async def on_receipt(rt: CityBrain, msg: FedMessage) -> list[Op]:
    """City: keep a read or done receipt of one node."""
    p = msg.payload
    key = f"{p['directive']}:{msg.sender}:{p['state']}"
    return [PutDoc(RECEIPTS, key, {"directive": p["directive"], "node": msg.sender, "state": p["state"],
                                   "at": p.get("at"), "actor": p.get("actor"), "note": p.get("note", ""),
                                   "received_at": rt.now(), "message": msg.id})]


async def receipts(rt: CityBrain, directive_id: str) -> dict[str, Any]:
    """Return who has read and done a directive (city), or its local state (community)."""
    doc = await rt.store.get_doc(DIRECTIVES, directive_id)
    if doc is None:
        raise NotFound(f"directive {directive_id} not found", field="id")
    if rt.settings.role == "community":
        return {"directive": doc.data, "nodes": {rt.node_id: {"read": doc.data.get("read_at"),
                                                              "done": doc.data.get("done_at")}}}
    nodes: dict[str, dict[str, Any]] = {n: {"read": None, "done": None} for n in doc.data.get("nodes", [])}
    for r in await rt.store.list_docs(RECEIPTS, where={"directive": directive_id}, limit=100000):
        nodes.setdefault(r.data["node"], {"read": None, "done": None})[r.data["state"]] = r.data["at"]
    return {"directive": doc.data, "nodes": nodes,
            "read": sum(1 for v in nodes.values() if v["read"]), "done": sum(1 for v in nodes.values() if v["done"])}


async def waiting(rt: CityBrain) -> int:
    """Count directives not yet done (city: by every target node; community: locally)."""
    docs = await rt.store.list_docs(DIRECTIVES, limit=100000)
    if rt.settings.role == "community":
        return sum(1 for d in docs if not d.data.get("done_at"))
    done: dict[str, set[str]] = {}
    for r in await rt.store.list_docs(RECEIPTS, where={"state": "done"}, limit=100000):
        done.setdefault(r.data["directive"], set()).add(r.data["node"])
    return sum(1 for d in docs if not set(d.data.get("nodes", [])) <= done.get(d.id, set()))


def setup_directives(rt: CityBrain, fed: Federation) -> None:
    """Register the directive commands and message handlers."""
    rt.commands.register("directive.issue", Issue, issue, "issue a directive or notice to community nodes",
                         roles=("admin", "city_operator", "command_centre"))
    rt.commands.register("directive.receipt", Receipt, receipt, "mark a received directive read or done")

    async def _directive(msg: FedMessage) -> list[Op]:
        return await on_directive(rt, msg)

    async def _receipt(msg: FedMessage) -> list[Op]:
        return await on_receipt(rt, msg)

    fed.register_handler("directive", _directive)
    fed.register_handler("notice", _directive)
    fed.register_handler("directive.receipt", _receipt)

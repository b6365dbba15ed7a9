"""The federation service of a node: typed messages up and down, handlers, node registry and link state."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import orjson

from citybrain.context import Context
from citybrain.errors import NotFound, ValidationError
from citybrain.federation.inbox import MessageHandler, Receiver
from citybrain.federation.link import Link
from citybrain.federation.messages import (
    FedMessage,
    down_subject,
    heartbeat_subject,
    prefix,
    token,
    up_subject,
)
from citybrain.federation.outbox import Outbox
from citybrain.ports import Ports
from citybrain.store.base import PutDoc

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from citybrain.bus.base import Message
    from citybrain.runtime import CityBrain

NODES = "fed_nodes"
HELLO_EVENT = "cb.event.federation.node.hello"
HEARTBEAT_S = 1.0
STALE_S = 4.0


def federation_url(rt: CityBrain) -> str:
    """Return the NATS URL of the federation: --parent, else a nats:// bus, else CITYBRAIN_FEDERATION_URL."""
    s = rt.settings
    if s.parent:
        return s.parent
    if s.bus.startswith("nats://"):
        return s.bus
    return s.env("FEDERATION_URL")


def stream_limit(rt: CityBrain, name: str, default: float) -> float:
    """Read a federation stream limit: settings.extra["federation"][name], then CITYBRAIN_FEDERATION_<NAME>."""
    raw = rt.settings.extra.get("federation", {}).get(name) or rt.settings.env(f"FEDERATION_{name}")
    if raw in (None, ""):
        return default
    value = float(raw)
    if value <= 0:
        raise ValueError(f"federation {name} must be positive, not {raw!r}")
    return value


class Federation:
    """send_up / send_down typed messages, register handlers, list nodes with link status and backlog."""

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self.role = rt.settings.role
        self.area = rt.settings.area
        self.prefix = prefix(rt.settings)
        self.link = Link(federation_url(rt), self.prefix, f"citybrain-{rt.node_id}",
                         max_age_s=stream_limit(rt, "stream_max_age_days", 30) * 86400,
                         max_bytes=int(stream_limit(rt, "stream_max_gib", 10) * 1024**3))
        self.outbox = Outbox(rt, self._subject_of)
        self.handlers: dict[str, MessageHandler] = {}
        if self.role == "community":
            subject, durable = down_subject(self.prefix, rt.node_id), f"down_{token(rt.node_id)}"
        else:
            subject, durable = f"{self.prefix}.up.>", f"up_{token(rt.node_id)}"
        self.receiver = Receiver(rt, self.link, subject, durable, self.handlers.get)
        self.known: dict[str, dict[str, Any]] = {}  # node id -> its registry document (city side)
        self.seen: dict[str, tuple[float, dict[str, Any]]] = {}  # node id -> (monotonic, last heartbeat)
        self._hb_client: Any = None
        self.link.on_up.append(self._subscribe_heartbeats)

    # wiring ----------------------------------------------------------------------------------
    def _subject_of(self, msg: FedMessage) -> str:
        if msg.channel == "up":
            return up_subject(self.prefix, msg.sender)
        return down_subject(self.prefix, msg.to)

    def register_handler(self, kind: str, fn: MessageHandler) -> None:
        """Handle received messages of `kind` with `async fn(msg) -> ops`; the ops commit with the inbox record."""
        self.handlers[kind] = fn

    async def start(self) -> None:
        """Load state and start the link, sender, receiver and heartbeat loops."""
        if self.role == "city":  # the receiver applies a hello on one process: every process follows it
            await self.rt.bus.subscribe(HELLO_EVENT, self._on_hello)  # before loading: nothing missed between
        await self.refresh_nodes()
        self.rt.spawn(self.link.run(), name="federation-link")  # every process can publish on the link
        # one process of the node sends, receives and beats at a time (leases; see citybrain/cluster.py)
        self.rt.cluster.singleton("federation-sender", lambda: self.outbox.run(self.link.publish, lambda: self.link.up))
        self.rt.cluster.singleton("federation-receiver", self._receive)
        self.rt.cluster.singleton("federation-heartbeat", self._heartbeats)
        self.rt.on_stop(self.link.close)

    async def refresh_nodes(self) -> None:
        """Read the registry of community nodes from the store (commands decide on it, not on this cache)."""
        self.known = {doc.id: doc.data for doc in await self.rt.store.list_docs(NODES, limit=100000)}

    async def _on_hello(self, msg: Message) -> None:
        sender = orjson.loads(msg.data).get("data", {}).get("sender")
        doc = await self.rt.store.get_doc(NODES, sender) if isinstance(sender, str) else None
        if doc is not None:
            self.known[doc.id] = doc.data

    async def _receive(self) -> None:
        """The receiver as a singleton job: reload what the previous receiver applied, then receive."""
        await self.receiver.load()
        await self.receiver.run()

    # sending ---------------------------------------------------------------------------------
    def up_op(self, kind: str, payload: dict[str, Any], ctx: Context) -> PutDoc:
        """Return the outbox op for an upward message (put it in the ops of the command causing it)."""
        if self.role != "community":
            raise ValidationError("only a community node sends messages up", field="role")
        return self.outbox.op(kind, "parent", "up", payload, ctx)

    async def area_view(self, within: str | None) -> dict[str, Any]:
        """Return an area's reports (newest first) and the directives sent to it with their receipts."""
        from citybrain.federation.views import (
            area_view,  # it reads the collections of modules importing this one
        )

        return await area_view(self.rt, self, within)

    def down_ops(self, target: str, kind: str, payload: dict[str, Any], ctx: Context) -> list[PutDoc]:
        """Return the outbox ops for a downward message to every node the target names."""
        return [self.outbox.op(kind, node, f"down.{node}", payload, ctx) for node in self.resolve(target)]

    async def send_up(self, kind: str, payload: dict[str, Any], ctx: Context | None = None) -> str:
        """Queue a message to the city durably (own transaction); return its message id."""
        op = self.up_op(kind, payload, ctx or self.rt.context())
        await self.rt.store.apply([op])
        return str(op.data["msg"]["id"])

    async def send_down(self, target: str, kind: str, payload: dict[str, Any], ctx: Context | None = None) -> list[str]:
        """Queue a message to the community nodes `target` names (node id, place URN or '*')."""
        await self.refresh_nodes()
        ops = self.down_ops(target, kind, payload, ctx or self.rt.context())
        await self.rt.store.apply(ops)
        return [str(op.data["msg"]["id"]) for op in ops]

    def resolve(self, target: str) -> list[str]:
        """Return the community node ids a target names: a node id, '*', or a place (nodes inside it)."""
        if self.role != "city":
            raise ValidationError("only a city node sends messages down", field="target")
        if target in ("*", "all"):
            found = sorted(self.known)
        elif target in self.known:
            found = [target]
        else:
            places = self.rt.ports.find(Ports.places)
            found = sorted(n for n, d in self.known.items() if d.get("area") == target or (
                places is not None and d.get("area") in places and places.within(d["area"], target)))
            if not found and places is not None and target in places:
                found = sorted(n for n, d in self.known.items() if places.within(target, d.get("area", "")))
        if not found:
            raise NotFound(f"no community node for {target!r}", field="target")
        return found

    # link state ------------------------------------------------------------------------------
    async def _subscribe_heartbeats(self) -> None:
        nc = self.link.nc
        if self.role != "city" or nc is None or nc is self._hb_client:
            return
        self._hb_client = nc
        await nc.subscribe(f"{self.prefix}.hb.>", cb=self._on_heartbeat)

    async def _on_heartbeat(self, raw: Msg) -> None:
        with contextlib.suppress(Exception):
            data = orjson.loads(raw.data)
            self.seen[str(data["node"])] = (time.monotonic(), data)

    async def _heartbeats(self) -> None:
        subject = heartbeat_subject(self.prefix, self.rt.node_id)
        while True:
            backlog = sum((await self.outbox.backlog()).values())
            data = {"node": self.rt.node_id, "role": self.role, "area": self.area, "backlog": backlog,
                    "time": self.rt.now()}
            await self.link.heartbeat(subject, orjson.dumps(data))
            await asyncio.sleep(HEARTBEAT_S)

    async def nodes(self) -> list[dict[str, Any]]:
        """Return this node and the nodes it links to, with link status and backlog both ways."""
        if self.role == "city":
            await self.refresh_nodes()
        backlog = await self.outbox.backlog()
        me = {"node": self.rt.node_id, "role": self.role, "area": self.area, "self": True,
              "link": self.link.status(), "backlog_up": backlog.get("up", 0),
              "backlog_down": sum(v for k, v in backlog.items() if k.startswith("down.")),
              "receiver": self.receiver.stats(), "sent": self.outbox.sent}
        out = [me]
        now = time.monotonic()
        for node in sorted(set(self.known) | {n for n in self.seen if n != self.rt.node_id}):
            seen_at, beat = self.seen.get(node, (0.0, {}))
            fresh = self.link.up and seen_at > 0 and now - seen_at < STALE_S
            # registered: its hello is applied (directives can be sent to it); a heartbeat alone lists a node
            # whose hello is still on its way
            out.append({"node": node, "role": "community", "area": self.known.get(node, beat).get("area", ""),
                        "self": False, "registered": node in self.known, "link": {"state": "up" if fresh else "down",
                                                "last_seen_s": round(now - seen_at, 1) if seen_at else None},
                        "backlog_up": int(beat.get("backlog", 0)) if fresh else None,
                        "backlog_down": backlog.get(f"down.{node}", 0),
                        "last_seq": self.receiver.last.get(node, 0)})
        return out

    async def kpis(self, within: str | None = None) -> dict[str, Any]:
        """Return federation indicators for the dashboard: nodes, links up, backlog, directives waiting."""
        nodes = [n for n in await self.nodes() if not n["self"]]
        places = self.rt.ports.find(Ports.places)
        if within and places is not None and within in places:
            nodes = [n for n in nodes if n["area"] in places and places.within(n["area"], within)]
        backlog = sum((n["backlog_down"] or 0) + (n["backlog_up"] or 0) for n in nodes)
        if self.role == "community":
            backlog = sum((await self.outbox.backlog()).values())
        from citybrain.federation.directives import waiting

        return {"nodes": len(nodes), "links_up": sum(1 for n in nodes if n["link"]["state"] == "up"),
                "backlog": backlog, "directives_waiting": await waiting(self.rt), "link": self.link.status()["state"]}

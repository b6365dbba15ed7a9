"""Federation messages: the typed envelope every message between a city node and its communities carries.

A message is addressed on a *channel*: ``up`` from a community to its city, ``down.<node>`` from the city
to one community node. Each sender numbers its messages per channel (``seq`` 1, 2, 3 …, no gaps) so the
receiver applies them in order; the ``id`` (a ULID) is the JetStream ``Nats-Msg-Id`` and the key of the
receiver's inbox, so a message is applied at most once however often it is delivered.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.context import Context, new_id

if TYPE_CHECKING:
    from citybrain.config import Settings

# Upward kinds (下情上达).
UP_KINDS: dict[str, str] = {
    "node.hello": "a community node announces itself and its area",
    "report": "a report of the community (scheduled or emergency cadence)",
    "case.escalate": "a case the community escalates to the city",
    "indicators": "aggregated indicators of the community's area",
    "directive.receipt": "a read or done receipt for a directive",
}
# Downward kinds (上情下达).
DOWN_KINDS: dict[str, str] = {
    "directive": "a directive to act, answered with read and done receipts",
    "notice": "a notice to read, answered with a read receipt",
    "mode.change": "the operating mode of an area changed (normal / watch / emergency …)",
    "plan.task": "a task of an emergency plan",
    "grant": "a data grant: what the community may hold beyond its area",
    "catalog.update": "an entry of the data catalog changed",
    "config": "configuration: thresholds, categories, report cadence",
}


class FedMessage(msgspec.Struct, kw_only=True):
    """One federation message: unique id, sender, channel sequence, kind, payload and the causing context."""

    id: str = msgspec.field(default_factory=new_id)
    kind: str
    sender: str  # node id of the sender
    to: str  # node id of the receiver ("city" side is the parent's id, or "*" for the city)
    channel: str  # "up" or "down.<node>"
    seq: int = 0  # per-(sender, channel) sequence; assigned by the sender loop, 1-based
    payload: dict[str, Any] = {}
    context: dict[str, Any] = {}
    created: str = ""

    def ctx(self) -> Context:
        """Return the context the message carries (origin = the sending node)."""
        return Context.from_dict(self.context) if self.context else Context(origin=self.sender)


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(FedMessage)


def encode(msg: FedMessage) -> bytes:
    """Serialise a message for the wire."""
    return _enc.encode(msg)


def decode(data: bytes) -> FedMessage:
    """Parse a message from the wire (raises msgspec.DecodeError / ValidationError)."""
    return _dec.decode(data)


def prefix(settings: Settings) -> str:
    """Return the subject prefix of this federation (CITYBRAIN_FEDERATION_PREFIX, default cbfed)."""
    return settings.env("FEDERATION_PREFIX", "cbfed") or "cbfed"


def stream_name(pfx: str) -> str:
    """Return the JetStream stream holding a federation's messages."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", pfx).upper() + "_FED"


def token(node_id: str) -> str:
    """Return a node id usable as one subject token (and in consumer names)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", node_id)


def up_subject(pfx: str, node_id: str) -> str:
    """Return the subject a community node publishes upward on."""
    return f"{pfx}.up.{token(node_id)}"


def down_subject(pfx: str, node_id: str) -> str:
    """Return the subject the city publishes to one community node on."""
    return f"{pfx}.down.{token(node_id)}"


def heartbeat_subject(pfx: str, node_id: str) -> str:
    """Return the (core NATS, not stored) subject of a node's heartbeats."""
    return f"{pfx}.hb.{token(node_id)}"


def known_kind(kind: str) -> bool:
    """Tell whether a kind is one of the built-in ones (plugins may add more)."""
    return kind in UP_KINDS or kind in DOWN_KINDS

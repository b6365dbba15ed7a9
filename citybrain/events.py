"""Events: what happened, published on the bus and kept in the event history."""

from __future__ import annotations

from typing import Any

import msgspec

from citybrain.context import Context, new_id


class Event(msgspec.Struct, kw_only=True):
    """One thing that happened: a command executed, a batch ingested, an alert raised."""

    type: str  # dotted, e.g. "command.case.open", "observations.ingested", "alert.raised"
    time: str  # UTC ISO 8601 from the runtime clock
    context: Context
    data: dict[str, Any] = {}
    seq: int | None = None  # position in the node's event history, set by the store
    id: str = msgspec.field(default_factory=new_id)  # unique per event; several events may share a context

    def subject(self, prefix: str = "cb") -> str:
        """Return the bus subject this event is published on."""
        return f"{prefix}.event.{self.type}"


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(Event)


def encode_event(event: Event) -> bytes:
    """Serialise an event for the bus or the store."""
    return _enc.encode(event)


def decode_event(data: bytes) -> Event:
    """Parse an event serialised by encode_event."""
    return _dec.decode(data)

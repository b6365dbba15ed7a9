"""The context every command and event carries: who, why, from where."""

from __future__ import annotations

from typing import Any

import msgspec
from ulid import ULID


def new_id() -> str:
    """Return a new ULID string (sortable by time)."""
    return str(ULID())


class Context(msgspec.Struct, frozen=True, kw_only=True):
    """Identity of one change: its ULID, the actor, the change that caused it, the node it started on."""

    id: str = msgspec.field(default_factory=new_id)
    actor: str = "system"
    parent_id: str | None = None
    origin: str = "local"
    area: str | None = None  # the place the actor is confined to (its identity's place); None: not confined

    def child(self, actor: str | None = None) -> Context:
        """Return a new context caused by this one (confined to the same area)."""
        return Context(actor=actor or self.actor, parent_id=self.id, origin=self.origin, area=self.area)

    def to_dict(self) -> dict[str, Any]:
        """Return the context as a plain dict (`area` only when the actor is confined)."""
        out: dict[str, Any] = {"id": self.id, "actor": self.actor, "parent_id": self.parent_id, "origin": self.origin}
        if self.area is not None:
            out["area"] = self.area
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Context:
        """Build a context from a dict produced by to_dict()."""
        return msgspec.convert(data, cls)

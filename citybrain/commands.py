"""The command registry: every change to the city is a named command with a schema and a context."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.context import Context
from citybrain.errors import NotFound, ValidationError
from citybrain.store.base import Op

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


class Outcome(msgspec.Struct, kw_only=True):
    """What a command handler decided: the writes to make atomically, its result, and the event data."""

    ops: list[Op] = []
    result: Any = None
    event: dict[str, Any] | None = None  # data of the event; None = the command's payload
    record: bool = True  # keep the event in the event history (False for high-volume commands)
    after: Any = None  # optional `async () -> None` run after the commit (update in-memory indexes)


Handler = Callable[["CityBrain", Any, Context], Awaitable[Outcome]]
# the place a command touches (an entity's, an alert's, a declared area …): a confined actor may run it only when
# that place lies in its area; None means the whole node (refused to every confined actor)
Locator = Callable[["CityBrain", Any], Awaitable[str | list[str | None] | None]]


@dataclass
class CommandSpec:
    """A registered command."""

    name: str
    schema: type[Any]
    handler: Handler
    summary: str
    roles: tuple[str, ...] = field(default_factory=tuple)  # who may run it; empty = any authenticated actor
    place: Locator | None = None  # the resource's place, judged against a confined actor's area


class CommandRegistry:
    """Name -> command spec."""

    def __init__(self) -> None:
        self._specs: dict[str, CommandSpec] = {}

    def register(
        self, name: str, schema: type[Any], handler: Handler, summary: str, roles: tuple[str, ...] = (),
        place: Locator | None = None,
    ) -> None:
        """Add a command; a name can only be registered once. `place` locates the resource it touches."""
        if name in self._specs:
            raise ValueError(f"command {name} registered twice")
        self._specs[name] = CommandSpec(name, schema, handler, summary, roles, place)

    def get(self, name: str) -> CommandSpec:
        """Return a command by name or raise NotFound."""
        try:
            return self._specs[name]
        except KeyError:
            raise NotFound(f"unknown command {name!r}", field="command") from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._specs.values(), key=lambda s: s.name))

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    @staticmethod
    def validate(spec: CommandSpec, payload: Any) -> Any:
        """Convert a payload (dict or struct) into the command's schema, naming the bad field."""
        if isinstance(payload, spec.schema):
            return payload
        try:
            return msgspec.convert(payload, spec.schema, strict=False)
        except msgspec.ValidationError as exc:
            text = str(exc)
            raise ValidationError(f"{spec.name}: {text}", field=error_field(text)) from None



def error_field(text: str) -> str | None:
    """Return the dotted field path named in a msgspec validation message."""
    path = text.split("at `$", 1)[1].split("`", 1)[0].lstrip(".") if "at `$" in text else ""
    if "required field `" in text:
        missing = text.split("required field `", 1)[1].split("`", 1)[0]
        path = f"{path}.{missing}" if path else missing
    return path or None

"""Operating mode per area: normal → watch (预警) → emergency IV/III/II/I → recovery → normal.

`mode.declare` changes an area's mode (recorded, broadcast down, reversible with `mode.revert`). A place's
effective mode is the most severe of its own and its ancestors' modes, so a district's emergency covers
every community in it. Only command_centre, city_operator and admin actors (and system automation) may
change a mode. Events: the command events plus `mode.changed` (bus subject cb.event.mode.changed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from citybrain.bus import Message
from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.emergency import LEVELS, MODES, ROLES, normal_level, require_role
from citybrain.errors import CityBrainError, Conflict, NotFound, ValidationError
from citybrain.ports import Ports
from citybrain.store import PutDoc

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

COLLECTION = "modes"
# from -> modes it may go to (emergency -> emergency is a level change)
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "normal": ("watch", "emergency"),
    "watch": ("normal", "emergency"),
    "emergency": ("emergency", "recovery", "watch"),
    "recovery": ("normal", "watch", "emergency"),
}


def severity(mode: str, level: str | None) -> int:
    """Rank a mode for comparison: normal 0, recovery 1, watch 2, emergency IV 3 … I 6."""
    if mode == "emergency":
        return 3 + LEVELS.index(level or "IV")
    return {"normal": 0, "recovery": 1, "watch": 2}.get(mode, 0)


class Declare(msgspec.Struct, kw_only=True):
    """mode.declare: put an area into a mode (emergency needs a level) for a reason."""

    area: str
    mode: str
    level: str | int | None = None
    reason: str = ""
    plan: str | None = None  # the plan activation that asked for it, if any


class Revert(msgspec.Struct, kw_only=True):
    """mode.revert: undo the area's last mode change."""

    area: str
    reason: str = ""


class ModeBoard:
    """Every area's declared mode, in memory and in the `modes` document collection."""

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self.states: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, int] = {}

    async def load(self) -> None:
        """Read the declared modes from the store."""
        for doc in await self.rt.store.list_docs(COLLECTION, limit=1_000_000):
            self.states[doc.id], self.versions[doc.id] = doc.data, doc.version

    async def refresh(self, area: str) -> None:
        """Re-read one area's declared mode from the store (another process may have changed it)."""
        doc = await self.rt.store.get_doc(COLLECTION, area)
        if doc is None:
            self.states.pop(area, None)
            self.versions.pop(area, None)
        elif doc.version >= self.versions.get(area, 0):
            self.states[area], self.versions[area] = doc.data, doc.version

    async def on_changed(self, msg: Message) -> None:
        """Follow mode changes made on any process of the node (every process gets every event)."""
        area = orjson.loads(msg.data).get("data", {}).get("area")
        if isinstance(area, str):
            await self.refresh(area)

    def declared(self, area: str) -> dict[str, Any]:
        """Return the area's own declared state (normal when nothing was declared)."""
        return self.states.get(area) or {"area": area, "mode": "normal", "level": None, "reason": "", "since": None,
                                         "actor": None, "previous": []}

    def mode_of(self, place: str) -> dict[str, Any]:
        """Return the effective mode of a place: the most severe of its own and its ancestors' declared modes."""
        places = self.rt.ports.find(Ports.places)
        chain = [place, *(places.ancestors(place) if places is not None else [])]
        best = self.declared(place)
        for area in chain[1:]:
            st = self.states.get(area)
            if st is not None and severity(st["mode"], st["level"]) > severity(best["mode"], best["level"]):
                best = st
        return {"place": place, "mode": best["mode"], "level": best["level"], "from": best["area"],
                "reason": best["reason"], "since": best["since"]}

    async def kpis(self, within: str | None = None) -> dict[str, Any]:
        """Return the mode and level of an area (default: the city) for the dashboard."""
        place = within or self.city()
        if place is None:
            return {"mode": "normal", "level": None}
        got = self.mode_of(place)
        return {"mode": got["mode"], "level": got["level"], "area": place, "since": got["since"]}

    def city(self) -> str | None:
        """Return the city place of this node, if there is one."""
        places = self.rt.ports.find(Ports.places)
        cities = places.of_type("City") if places is not None else []
        return cities[0].id if cities else None

    def listing(self) -> list[dict[str, Any]]:
        """Return every area with a declared mode, most severe first."""
        rows = [{k: v for k, v in st.items() if k != "previous"} | {"changes": len(st.get("previous", []))}
                for st in self.states.values()]
        return sorted(rows, key=lambda r: (-severity(r["mode"], r["level"]), r["area"]))

    def change(self, area: str, new: dict[str, Any], ctx: Context, after_extra: Any = None) -> Outcome:
        """Return the outcome writing a new state: document, downward broadcast and the mode.changed event."""
        old = self.declared(area)
        version = self.versions.get(area, 0)
        ops: list[Any] = [PutDoc(COLLECTION, area, new, expect_version=version)]
        payload = {k: new[k] for k in ("area", "mode", "level", "reason", "since", "actor", "plan")}
        sent = self._broadcast(area, payload, ctx, ops)
        event = {**payload, "from": {"mode": old["mode"], "level": old["level"]}, "broadcast": sent}

        async def after() -> None:
            self.states[area] = new
            self.versions[area] = version + 1
            await self.rt.emit("mode.changed", event, ctx.child())

        return Outcome(ops=ops, result=event, event=event, after=after)

    def _broadcast(self, area: str, payload: dict[str, Any], ctx: Context, ops: list[Any]) -> int:
        fed = self.rt.ports.find(Ports.federation)
        if fed is None or getattr(fed, "role", "city") != "city":
            return 0
        try:
            down = fed.down_ops(area, "mode.change", payload, ctx)  # the federation kind (messages.py)
        except CityBrainError:  # no community node below this area
            return 0
        ops.extend(down)
        return len(down)


async def _declare(rt: CityBrain, cmd: Declare, ctx: Context) -> Outcome:
    require_role(ctx, "mode.declare")
    board = rt.ports.own(Ports.modes, ModeBoard)
    await board.refresh(cmd.area)  # decide on the stored state, not on what this process last heard
    places = rt.ports.find(Ports.places)
    if places is not None and cmd.area not in places:
        raise NotFound(f"area: unknown place {cmd.area}", field="area")
    if cmd.mode not in MODES:
        raise ValidationError(f"mode: {cmd.mode!r} is not one of {', '.join(MODES)}", field="mode")
    level = normal_level(cmd.level)
    if cmd.mode == "emergency" and level is None:
        raise ValidationError("level: an emergency needs a level (IV, III, II or I)", field="level")
    if cmd.mode != "emergency":
        level = None
    old = board.declared(cmd.area)
    if cmd.mode not in TRANSITIONS[old["mode"]]:
        raise Conflict(f"mode: {cmd.area} is {old['mode']}; it cannot go to {cmd.mode}", field="mode")
    if cmd.mode == old["mode"] and level == old["level"]:
        raise Conflict(f"mode: {cmd.area} is already {cmd.mode} {level or ''}".rstrip(), field="mode")
    prior = {k: v for k, v in old.items() if k != "previous"}
    new = {"area": cmd.area, "mode": cmd.mode, "level": level, "reason": cmd.reason, "since": rt.now(),
           "actor": ctx.actor, "plan": cmd.plan, "previous": [*old.get("previous", []), prior][-50:]}
    return board.change(cmd.area, new, ctx)


async def _revert(rt: CityBrain, cmd: Revert, ctx: Context) -> Outcome:
    require_role(ctx, "mode.revert")
    board = rt.ports.own(Ports.modes, ModeBoard)
    await board.refresh(cmd.area)
    old = board.declared(cmd.area)
    if not old.get("previous"):
        raise Conflict(f"area: {cmd.area} has no mode change to revert", field="area")
    *rest, prior = old["previous"]
    new = {**prior, "previous": rest, "reason": cmd.reason or f"reverted: {old['reason']}", "since": rt.now(),
           "actor": ctx.actor, "plan": prior.get("plan")}
    new["area"] = cmd.area
    return board.change(cmd.area, new, ctx)


async def _locate_area(rt: CityBrain, cmd: Declare | Revert) -> str:
    """A mode change touches the area it names."""
    return cmd.area


async def setup(rt: CityBrain) -> None:
    """Load declared modes and register mode.declare and mode.revert."""
    board = ModeBoard(rt)
    await rt.bus.subscribe("cb.event.mode.changed", board.on_changed)  # before load: nothing missed between
    await board.load()
    rt.ports.modes = board
    rt.commands.register("mode.declare", Declare, _declare, "declare an area's operating mode (and level)", ROLES,
                         place=_locate_area)
    rt.commands.register("mode.revert", Revert, _revert, "undo an area's last mode change", ROLES, place=_locate_area)

"""Scope of a community node: it holds and shows only its own area (plus the path of places up to the city).

Two layers. Holding: every command's writes are checked after its handler ran, and an entity placed
outside the area (or a place that is neither inside the area nor one of its ancestors) is refused, so
another community's data never gets into the store. Showing: every HTTP request is confined to the area
the way a place-scoped identity is (the trust middleware's check_area), whatever identity is acting.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.errors import CityBrainError, Forbidden
from citybrain.model.types import PLACE_LEVELS
from citybrain.ports import Ports
from citybrain.store.base import DeleteAttrs, DeleteEntity, Op, SetAttrs, UpsertEntity, WriteObservations

_URN = re.compile(r"urn:ngsi-ld:[A-Za-z0-9_.-]+:[^\s\"'<>,]+")

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


def inside(rt: CityBrain, place: str | None, *, as_place: bool = False) -> bool:
    """Tell whether a place lies in the node's area (places: or is one of the area's ancestors)."""
    area = rt.settings.area
    index = rt.ports.find(Ports.places)
    if place is None or not area:
        return True  # unlocated things belong to no other community
    if place == area:
        return True
    if index is None:
        return False
    if index.within(place, area):
        return True
    return as_place and place in index.ancestors(area)


async def place_of(rt: CityBrain, entity_id: str) -> tuple[bool, str | None]:
    """Return (exists, place) of an entity: from the directory, else from the store."""
    directory = rt.ports.find(Ports.directory)
    if directory is None or entity_id not in directory.types:
        return False, None
    place: str | None = directory.places.get(entity_id)
    if place is None:
        entity = await rt.store.get_entity(entity_id)
        place = entity.place if entity is not None else None
        if entity is not None and entity.type not in PLACE_LEVELS:
            directory.places[entity_id] = place  # the model loads places lazily; remember it
    return True, place


async def check_ops(rt: CityBrain, ops: list[Op]) -> None:
    """Raise Forbidden if any write touches data outside the node's area."""
    for op in ops:
        if isinstance(op, UpsertEntity):
            e = op.entity
            if e.type in PLACE_LEVELS:
                if not (inside(rt, e.id, as_place=True) or inside(rt, e.place) and e.place != e.id):
                    raise Forbidden(f"place {e.id} lies outside this community node's area {rt.settings.area}")
            elif not inside(rt, e.place):
                raise Forbidden(f"entity {e.id} lies outside this community node's area {rt.settings.area}")
        ids: list[str] = []
        if isinstance(op, SetAttrs | DeleteAttrs):
            ids = [op.entity_id]
        elif isinstance(op, DeleteEntity):
            ids = [op.id]
        elif isinstance(op, WriteObservations):
            ids = sorted({r.entity_id for r in op.rows})
        for entity_id in ids:
            if not inside(rt, (await place_of(rt, entity_id))[1]):
                raise Forbidden(f"entity {entity_id} lies outside this community node's area {rt.settings.area}")


def guard_commands(rt: CityBrain) -> None:
    """Wrap every registered command so its writes are checked against the node's area."""
    for spec in rt.commands:
        if getattr(spec.handler, "_area_guarded", False):
            continue
        inner = spec.handler

        async def guarded(rt_: CityBrain, cmd: Any, ctx: Context, _inner: Any = inner) -> Outcome:
            outcome: Outcome = await _inner(rt_, cmd, ctx)
            await check_ops(rt_, list(outcome.ops))
            return outcome

        guarded._area_guarded = True  # type: ignore[attr-defined]
        spec.handler = guarded


class AreaScope:
    """ASGI middleware confining every request on a community node to the node's area."""

    def __init__(self, app: ASGIApp, rt: CityBrain) -> None:
        self.app, self.rt = app, rt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.rt.settings.area:
            from citybrain.confine import check_area
            from citybrain.identity import Identity
            from citybrain.trust.policy import family_of

            family = family_of(scope["path"]) or "model"
            ident = Identity(name=self.rt.node_id, role="community_operator", place=self.rt.settings.area)
            try:
                await check_area(self.rt, scope, ident, family)
            except CityBrainError as exc:
                response = JSONResponse(exc.to_problem(), status_code=exc.status,
                                        media_type="application/problem+json")
                await response(scope, receive, send)
                return
        if scope["type"] != "http" or not self.rt.settings.area:
            await self.app(scope, receive, send)
        elif scope.get("method") == "GET":
            await self._filtered(scope, receive, send)
        else:
            await self._checked(scope, receive, send)

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a write whose body names an entity or place outside the area (observations, batches …)."""
        messages: list[Message] = []
        more = True
        while more:
            message = await receive()
            messages.append(message)
            more = message["type"] == "http.request" and bool(message.get("more_body"))
        body = b"".join(m.get("body", b"") for m in messages)
        places = self.rt.ports.find(Ports.places)
        for urn in sorted(set(_URN.findall(body.decode("utf-8", "replace")))):
            if places is not None and urn in places:
                outside = not inside(self.rt, urn, as_place=True)
            else:
                exists, place = await place_of(self.rt, urn)
                outside = exists and not inside(self.rt, place)
            if outside:
                exc = Forbidden(f"{urn} lies outside this community node's area {self.rt.settings.area}")
                response = JSONResponse(exc.to_problem(), status_code=exc.status, media_type="application/problem+json")
                await response(scope, receive, send)
                return
        pending = list(messages)

        async def replay() -> Message:
            return pending.pop(0) if pending else await receive()

        await self.app(scope, replay, send)

    async def _filtered(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request and drop items placed outside the area from a JSON list response."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                if b"json" not in dict(message.get("headers", [])).get(b"content-type", b""):
                    start["pass"] = True  # streams (SSE) and pages go through untouched
                    await send(message)
            elif message["type"] == "http.response.body" and not start.get("pass"):
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    body = await self._filter(b"".join(chunks), dict(start.get("headers", [])))
                    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                    headers.append((b"content-length", str(len(body)).encode()))
                    await send({"type": "http.response.start", "status": start["status"], "headers": headers})
                    await send({"type": "http.response.body", "body": body})
            else:
                await send(message)

        await self.app(scope, receive, capture)

    async def _filter(self, body: bytes, headers: dict[bytes, bytes]) -> bytes:
        if b"json" not in headers.get(b"content-type", b"") or not body.startswith((b"[", b"{")):
            return body
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        items = doc.get("features") if isinstance(doc, dict) else doc  # a list, or GeoJSON features
        if not isinstance(items, list):
            return body
        places = self.rt.ports.find(Ports.places)
        kept: list[Any] = []
        for item in items:
            keep = True
            if isinstance(item, dict) and isinstance(item.get("place"), str):
                keep = inside(self.rt, item["place"], as_place=True)
            elif isinstance(item, dict) and isinstance(item.get("id"), str):
                if places is not None and item["id"] in places:
                    keep = inside(self.rt, item["id"], as_place=True)
                else:
                    exists, place = await place_of(self.rt, item["id"])
                    keep = not exists or inside(self.rt, place)
            if keep:
                kept.append(item)
        if len(kept) == len(items):
            return body
        return orjson.dumps(dict(doc, features=kept) if isinstance(doc, dict) else kept)

"""NGSI-LD subscription routes: create, list, retrieve, update, delete; stored as documents.

Every change of a subscription is a command (`ngsi.subscription.create|update|delete`, ngsi/commands.py):
it writes the document and publishes its event. Every process keeps its live set of subscriptions (the
notifier's watches) current from those events, re-reading the document from the store, so a subscription
made through one process notifies from whichever process handles a change, and one deleted through any
process stops everywhere.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import orjson
from fastapi import APIRouter, Request, Response

from citybrain.bus import Message
from citybrain.clock import normalise_time
from citybrain.confine import confine
from citybrain.context import new_id
from citybrain.errors import CityBrainError
from citybrain.events import decode_event
from citybrain.model.urn import is_urn
from citybrain.ngsi.entities import actor, body_and_context, execute
from citybrain.ngsi.errors import AlreadyExists, BadRequestData, NgsiError, ResourceNotFound, from_citybrain
from citybrain.ngsi.geo import geo_filter
from citybrain.ngsi.http import int_param, ngsi_response, request_context, route, tenant_runtime
from citybrain.ngsi.ldcontext import ActiveContext, resolve, to_storage
from citybrain.ngsi.notify import STATUS, Notifier, Watch, merge_status
from citybrain.ngsi.query import Predicate, parse_q
from citybrain.ports import Ports
from citybrain.regex import Pattern, PatternError, compile_user
from citybrain.runtime import CityBrain
from citybrain.store import Doc

router = APIRouter(prefix="/ngsi-ld/v1", tags=["ngsi-ld"])
COLLECTION = "ngsi_subscriptions"
SUBSCRIPTION_EVENTS = "cb.event.command.ngsi.subscription.>"
_FIELDS = {"id", "type", "subscriptionName", "description", "entities", "watchedAttributes", "q", "geoQ",
           "notification", "throttling", "expiresAt", "isActive", "timeInterval", "lang", "scopeQ", "@context",
           "notificationTrigger", "showChanges", "jsonldContext", "status", "csf", "temporalQ"}


def subscription_q(q: str, ctx: ActiveContext) -> Predicate:
    """Parse a subscription's q; a percent-encoded q (ngsildclient's SubscriptionBuilder URL-escapes it, as
    Orion-LD accepts) is decoded when it does not parse as sent. The document keeps q as it was sent."""
    try:
        return parse_q(q, ctx)
    except BadRequestData:
        decoded = unquote(q)
        if decoded == q:
            raise
        return parse_q(decoded, ctx)


def compile_watch(sub: dict[str, Any], context: Any, area: str | None = None, revision: str = "") -> Watch:
    """Validate a subscription and compile it into a Watch (BadRequestData naming the bad member); `area`:
    the place its creator was confined to — only entities placed there (or below) are notified."""
    unknown = set(sub) - _FIELDS
    if unknown:
        raise BadRequestData(f"subscription: unknown member(s) {', '.join(sorted(unknown))}")
    if sub.get("type") != "Subscription":
        raise BadRequestData('type: a subscription must have "type": "Subscription"')
    ctx = resolve(context)
    selectors: list[tuple[str | None, str | None, Pattern | None]] = []
    ents = sub.get("entities")
    if ents is not None:
        if not isinstance(ents, list) or not ents or not all(isinstance(e, dict) for e in ents):
            raise BadRequestData("entities: expected a non-empty list of {type, id, idPattern}")
        for e in ents:
            if not isinstance(e.get("type"), str) or not e["type"]:
                raise BadRequestData("entities: every selector needs a type")
            if "id" in e and not is_urn(e["id"]):
                raise BadRequestData(f"entities: {e['id']!r} is not a URI")
            pattern = None
            if "idPattern" in e:
                try:
                    pattern = compile_user(str(e["idPattern"]))
                except PatternError as exc:
                    raise BadRequestData(f"entities: invalid or unsupported idPattern ({exc}); RE2 syntax, "
                                         "no back-references or look-around") from None
            selectors.append((to_storage(e["type"], ctx), e.get("id"), pattern))
    watched = sub.get("watchedAttributes")
    if watched is not None and (not isinstance(watched, list) or not watched
                                or not all(isinstance(a, str) and a for a in watched)):
        raise BadRequestData("watchedAttributes: expected a non-empty list of attribute names")
    if ents is None and watched is None:
        raise BadRequestData("a subscription needs entities or watchedAttributes")
    q = sub.get("q")
    if q is not None and not isinstance(q, str):
        raise BadRequestData("q: expected a string")
    geo = sub.get("geoQ")
    if geo is not None and not isinstance(geo, dict):
        raise BadRequestData("geoQ: expected an object")
    note = sub.get("notification")
    if not isinstance(note, dict) or not isinstance(note.get("endpoint"), dict):
        raise BadRequestData("notification: expected an object with an endpoint")
    uri = note["endpoint"].get("uri")
    if not isinstance(uri, str) or not re.match(r"^https?://[^\s/]+", uri):
        raise BadRequestData(f"notification.endpoint.uri: {uri!r} is not an http(s) URL")
    accept = note["endpoint"].get("accept", "application/json")
    if accept not in ("application/json", "application/ld+json"):
        raise BadRequestData(f"notification.endpoint.accept: {accept!r} is not supported")
    fmt = note.get("format", "normalized")
    if fmt not in ("normalized", "keyValues", "concise", "simplified"):
        raise BadRequestData(f"notification.format: {fmt!r} is not normalized, keyValues or concise")
    attrs = note.get("attributes")
    if attrs is not None and (not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs)):
        raise BadRequestData("notification.attributes: expected a list of attribute names")
    throttling = sub.get("throttling", 0)
    if isinstance(throttling, bool) or not isinstance(throttling, int | float) or throttling < 0:
        raise BadRequestData("throttling: expected a number of seconds ≥ 0")
    expires = sub.get("expiresAt")
    if expires is not None:
        try:
            expires = normalise_time(expires, "expiresAt")
        except CityBrainError as exc:
            raise BadRequestData(exc.detail) from None
    active = sub.get("isActive", True)
    if not isinstance(active, bool):
        raise BadRequestData("isActive: expected true or false")
    return Watch(
        id=sub["id"], ctx=ctx, selectors=selectors,
        watched={to_storage(a, ctx) for a in watched} if watched else None,
        q=subscription_q(q, ctx) if q is not None else None,
        geo=geo_filter(geo.get("georel"), geo.get("geometry"), geo.get("coordinates"), geo.get("geoproperty"), ctx)
        if geo else None,
        attrs={to_storage(a, ctx) for a in attrs} if attrs else None,
        fmt="keyValues" if fmt == "simplified" else fmt, uri=uri, accept=accept, throttling=float(throttling),
        active=active, expires=expires, area=area, revision=revision)


async def _doc(rt: CityBrain, sub_id: str, request: Request | None = None) -> dict[str, Any]:
    doc = await rt.store.get_doc(COLLECTION, sub_id)
    if doc is None or (request is not None and not _visible(rt, doc.data, confine(request, None))):
        raise ResourceNotFound(f"subscription {sub_id} not found")
    return doc.data


def _visible(rt: CityBrain, data: dict[str, Any], area: str | None) -> bool:
    """Tell whether a caller confined to `area` (None: not confined) may see a subscription: one made in it."""
    if area is None:
        return True
    places = rt.ports.find(Ports.places)
    made_in = data.get("area")
    return isinstance(made_in, str) and places is not None and made_in in places and places.within(made_in, area)


async def _render(rt: CityBrain, data: dict[str, Any]) -> dict[str, Any]:
    sub = dict(data["subscription"])
    # the stored status holds what every process sent; this process adds what it has not stored yet
    doc = await rt.store.get_doc(STATUS, sub["id"])
    watch = rt.ports.ngsi_notifier.watches.get(sub["id"])
    status = doc.data if doc else {}
    if watch is not None:
        status = merge_status(status, watch.unstored(doc.version if doc else 0))
    note = dict(sub.get("notification", {}))
    for key in ("lastNotification", "lastSuccess", "lastFailure", "timesSent", "timesFailed"):
        if key in status:
            note[key] = status[key]
    note["status"] = status.get("status", "ok") if status.get("timesSent") or status.get("timesFailed") else "ok"
    sub["notification"] = note
    expired = sub.get("expiresAt") and sub["expiresAt"] <= rt.now()
    sub["status"] = "expired" if expired else ("active" if sub.get("isActive", True) else "paused")
    return sub


@route(router, "/subscriptions", ["POST"], 201)
async def create(request: Request) -> Response:
    """Create a subscription (201 with Location)."""
    rt = await tenant_runtime(request, create=True)
    body, ctx = await body_and_context(request, rt)
    if not isinstance(body, dict):
        raise BadRequestData("a subscription must be a JSON object")
    context = body.get("@context", ctx.urls[0] if len(ctx.urls) == 1 else list(ctx.urls) or None)
    sub = {k: v for k, v in body.items() if k != "@context"}
    sub_id = sub.setdefault("id", f"urn:ngsi-ld:Subscription:{new_id()}")
    if not is_urn(sub_id):
        raise BadRequestData(f"id: {sub_id!r} is not a URI")
    area = confine(request, None)  # a place-scoped creator's subscription sees only its area
    try:
        await rt.execute("ngsi.subscription.create", {"subscription": sub, "context": context, "area": area},
                         rt.context(actor(request)))
    except CityBrainError as exc:
        if exc.code == "AlreadyExists":
            raise AlreadyExists(f"subscription {sub_id} already exists") from None
        raise from_citybrain(exc) from None
    return Response(status_code=201, headers={"Location": f"/ngsi-ld/v1/subscriptions/{sub_id}"})


@route(router, "/subscriptions", ["GET"])
async def list_subscriptions(request: Request) -> Response:
    """List subscriptions."""
    rt = await tenant_runtime(request)
    ctx = request_context(request)
    limit = int_param(request, "limit", 20, 1, 1000)
    offset = int_param(request, "offset", 0, 0, 10**9)
    docs = await rt.store.list_docs(COLLECTION, limit=limit, offset=offset)
    area = confine(request, None)  # a place-scoped caller lists the subscriptions made in its area
    docs = [d for d in docs if _visible(rt, d.data, area)]
    return ngsi_response(request, [await _render(rt, d.data) for d in docs], ctx)


@route(router, "/subscriptions/{sub_id}", ["GET"])
async def retrieve(request: Request, sub_id: str) -> Response:
    """Return one subscription with its notification status."""
    rt = await tenant_runtime(request)
    ctx = request_context(request)
    return ngsi_response(request, await _render(rt, await _doc(rt, sub_id, request)), ctx)


@route(router, "/subscriptions/{sub_id}", ["PATCH"], 204)
async def update(request: Request, sub_id: str) -> Response:
    """Change members of a subscription."""
    rt = await tenant_runtime(request)
    body, _ = await body_and_context(request, rt)
    await _doc(rt, sub_id, request)
    if not isinstance(body, dict) or not body:
        raise BadRequestData("the body must be a non-empty JSON object of subscription members")
    members = {k: v for k, v in body.items() if k != "@context"}
    payload = {"id": sub_id, "members": members, "context": body.get("@context")}
    for attempt in range(3):
        try:
            await execute(rt, request, "ngsi.subscription.update", payload)
            break
        except NgsiError as exc:  # changed by another request meanwhile: merge into the newer version
            if exc.kind != "Conflict" or attempt == 2:
                raise
    return Response(status_code=204)


@route(router, "/subscriptions/{sub_id}", ["DELETE"], 204)
async def delete(request: Request, sub_id: str) -> Response:
    """Delete a subscription."""
    rt = await tenant_runtime(request)
    await _doc(rt, sub_id, request)
    await execute(rt, request, "ngsi.subscription.delete", {"id": sub_id})
    return Response(status_code=204)


def watch_of(doc: Doc) -> Watch:
    """Compile a stored subscription document."""
    data = doc.data
    return compile_watch(data["subscription"], data.get("context"), data.get("area"), str(data.get("revision", "")))


async def refresh(rt: CityBrain, notifier: Notifier, sub_id: str) -> None:
    """Bring one subscription of the live set in line with the store (the store decides, whatever order the
    events of several processes arrive in)."""
    doc = await rt.store.get_doc(COLLECTION, sub_id)
    if doc is None:
        notifier.remove(sub_id)
        return
    current = notifier.watches.get(sub_id)
    if current is not None and current.revision == str(doc.data.get("revision", "")):
        return  # this process wrote it, or has it already
    try:
        notifier.put(watch_of(doc))
    except Exception as exc:  # a stored subscription that no longer compiles must not stop the node
        notifier.remove(sub_id)
        await rt.dead_letter("ngsi:subscription", str(exc), orjson.dumps(doc.data))


async def follow(rt: CityBrain, notifier: Notifier) -> None:
    """Keep the live set current from the subscription commands of every process, then load what is stored."""
    touched: set[str] | None = set()  # subscriptions that changed while loading: read again afterwards

    async def on_event(msg: Message) -> None:
        sub_id = decode_event(msg.data).data.get("id")
        if not isinstance(sub_id, str):
            return
        if touched is not None:
            touched.add(sub_id)
        await refresh(rt, notifier, sub_id)

    # no durable/queue name: every process gets every event and keeps its own live set
    await rt.bus.subscribe(SUBSCRIPTION_EVENTS, on_event)
    await load_all(rt, notifier)
    again, touched = touched, None
    for sub_id in again or ():
        await refresh(rt, notifier, sub_id)


async def load_all(rt: CityBrain, notifier: Notifier) -> None:
    """Compile every stored subscription into the notifier (bad ones are skipped)."""
    offset = 0
    while True:
        docs = await rt.store.list_docs(COLLECTION, limit=1000, offset=offset)
        for d in docs:
            try:
                notifier.put(watch_of(d))
            except Exception as exc:  # a stored subscription that no longer compiles must not stop the node
                await rt.dead_letter("ngsi:subscription", str(exc), orjson.dumps(d.data))
        if len(docs) < 1000:
            return
        offset += 1000

"""Subscription notifications: match entity changes against subscriptions, send HTTP notifications.

A node is several processes. Every process holds the live set of subscriptions (kept current from the
subscription command events, see subscriptions.py), but each change is notified by one process only: the
notifier takes command events (cb.event.command.entity.*) and observation batches (cb.obs.>) through
work-sharing durable consumers with the same name on every process, so the bus hands each message to one
of them. Each subscription has its own queue and worker task, so a slow or failing endpoint only delays
itself. Sends are retried with exponential backoff.

A subscription's status is one stored document for all processes: each process adds what it did since its
last write (counts, times) with a version check, at most every `status_every` seconds. Throttling holds
across processes too: before a throttled subscription notifies, its process takes the next slot in the
status document (a version-checked write of lastNotification), so two processes never notify it inside
one throttling interval.

Matching is batch-oriented: an observation batch is grouped by entity once and matched against every live
subscription with one clock reading. Notifications are posted with aiohttp (kept-alive connections, its C
HTTP parser, proxies from the environment): httpx cost about ten times more CPU per request, which on a busy
node is taken from ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
import orjson

from citybrain.bus import Message
from citybrain.clock import parse_time
from citybrain.context import new_id
from citybrain.errors import AlreadyExists, Conflict
from citybrain.events import decode_event
from citybrain.ngsi.convert import entity_out
from citybrain.ngsi.egress import EgressPolicy, EgressRefused, checked_resolver
from citybrain.ngsi.geo import GeoPredicate
from citybrain.ngsi.http import JSONLD_REL, context_value
from citybrain.ngsi.ldcontext import ActiveContext
from citybrain.ngsi.query import Predicate
from citybrain.obs import OBS_ALL, decode_rows
from citybrain.ports import Ports
from citybrain.regex import Pattern
from citybrain.store import Doc, PutDoc

if TYPE_CHECKING:
    from citybrain.model.directory import Directory
    from citybrain.model.entity import Entity
    from citybrain.runtime import CityBrain

log = logging.getLogger(__name__)

STATUS = "ngsi_subscription_status"
# consumer names shared by every process of a node: the bus gives each change to one of them
ENTITY_CONSUMER = "ngsi-notify-entities"
OBS_CONSUMER = "ngsi-notify-observations"
_COUNTS = ("timesSent", "timesFailed")
_TIMES = ("lastNotification", "lastSuccess", "lastFailure")


def merge_status(stored: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """Return a stored status with one process's changes added: counts summed, the latest times kept."""
    out = dict(stored)
    for key in _COUNTS:
        if delta.get(key):
            out[key] = int(out.get(key, 0) or 0) + int(delta[key])
    for key in _TIMES:
        if delta.get(key) and delta[key] > (out.get(key) or ""):
            out[key] = delta[key]
    if delta.get("lastFailure") and delta["lastFailure"] == out.get("lastFailure") and "lastError" in delta:
        out["lastError"] = delta["lastError"]
    if out.get("lastSuccess") or out.get("lastFailure"):
        out["status"] = "ok" if (out.get("lastSuccess") or "") >= (out.get("lastFailure") or "") else "failed"
    return out


@dataclass
class Watch:
    """A compiled subscription: what it watches and where it notifies."""

    id: str
    ctx: ActiveContext
    selectors: list[tuple[str | None, str | None, Pattern | None]]  # (type, id, idPattern)
    watched: set[str] | None
    q: Predicate | None
    geo: GeoPredicate | None
    attrs: set[str] | None
    fmt: str
    uri: str
    accept: str
    throttling: float
    active: bool
    expires: str | None
    area: str | None = None  # only entities placed in this place or below it (a place-scoped creator)
    revision: str = ""  # the stored subscription's revision (the context id of the command that wrote it)
    # what this process has sent since it started (metrics), and what it has not yet added to the stored status
    status: dict[str, Any] = field(default_factory=lambda: {"timesSent": 0, "timesFailed": 0})
    pending: dict[str, Any] = field(default_factory=dict)
    in_flight: tuple[int, dict[str, Any]] | None = None  # (version it makes, changes) while being stored
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    saved_at: float = float("-inf")  # loop time of the last status write
    save_pending: bool = False

    def selects(self, entity_id: str, entity_type: str | None) -> bool:
        """Tell whether an entity is among the subscription's entities."""
        if not self.selectors:
            return True
        for stype, sid, pattern in self.selectors:
            if stype is not None and stype != entity_type:
                continue
            if sid is not None and sid != entity_id:
                continue
            if pattern is not None and not pattern.search(entity_id):
                continue
            return True
        return False

    def note(self, **changes: Any) -> None:
        """Record what happened to a notification, here and in the changes still to be stored."""
        for key, value in changes.items():
            if key in _COUNTS:
                self.status[key] = self.status.get(key, 0) + value
                self.pending[key] = self.pending.get(key, 0) + value
            else:
                self.status[key] = self.pending[key] = value

    def unstored(self, version: int) -> dict[str, Any]:
        """Return this process's status changes that the stored status at `version` does not hold yet."""
        if self.in_flight is not None and version < self.in_flight[0]:
            return merge_status(self.in_flight[1], self.pending)
        return self.pending


# what a subscription says (replaced by an update); the rest of a Watch is its live state (kept)
DEFINITION = ("ctx", "selectors", "watched", "q", "geo", "attrs", "fmt", "uri", "accept", "throttling", "active",
              "expires", "area", "revision")


class Notifier:
    """Holds live subscriptions and their workers."""

    retries = 3
    backoff = 0.2  # seconds before the first retry; doubles each time
    timeout = 5.0
    status_every = 1.0  # seconds between status writes per subscription and process
    claim_tries = 20  # version conflicts on the throttling slot before giving up on the wait

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self.watches: dict[str, Watch] = {}
        self.client: httpx.AsyncClient | None = None  # when set (tests), every notification goes through it
        self.session: aiohttp.ClientSession | None = None  # opened on the first notification
        self.egress = EgressPolicy.from_settings(rt.settings)  # where notifications may go (egress.py)
        rt.on_stop(self.close)

    async def start(self) -> None:
        """Take entity changes from the bus, sharing them with the node's other processes (one each)."""
        await self.rt.bus.subscribe("cb.event.command.entity.>", self._on_event,
                                    durable=ENTITY_CONSUMER, queue=ENTITY_CONSUMER)
        await self.rt.bus.subscribe(OBS_ALL, self._on_obs, durable=OBS_CONSUMER, queue=OBS_CONSUMER)

    async def close(self) -> None:
        """Stop workers and the HTTP client; add the status changes not yet stored."""
        for w in self.watches.values():
            if w.task:
                w.task.cancel()
        for w in list(self.watches.values()):
            if w.pending:
                with contextlib.suppress(Exception):
                    await self._store_status(w)
        if self.client is not None:
            await self.client.aclose()
        if self.session is not None:
            await self.session.close()

    def put(self, watch: Watch) -> None:
        """Add a subscription, or change one in place (its queue, worker and status carry on)."""
        old = self.watches.get(watch.id)
        if old is not None:
            for name in DEFINITION:
                setattr(old, name, getattr(watch, name))
            return
        self.watches[watch.id] = watch
        watch.task = self.rt.spawn(self._worker(watch), name=f"ngsi-sub-{watch.id}")

    def remove(self, sub_id: str) -> None:
        """Drop a subscription (what it had queued is not sent)."""
        old = self.watches.pop(sub_id, None)
        if old is not None and old.task:
            old.task.cancel()

    async def _on_event(self, msg: Message) -> None:
        if not self.watches:
            return
        event = decode_event(msg.data)
        data = event.data
        if data.get("deleted") and "attrs" not in data:
            return
        ids = data.get("ids") or ([data["id"]] if isinstance(data.get("id"), str) else [])
        # an instance of a multi-attribute changes under "<name> <datasetId>": watchers name the attribute
        attrs = {a.partition(" ")[0] for a in data["attrs"]} if isinstance(data.get("attrs"), list) else None
        await self.changed_many({eid: attrs for eid in ids})

    async def _on_obs(self, msg: Message) -> None:
        if not self.watches:
            return
        by_entity: dict[str, set[str] | None] = {}
        for row in decode_rows(msg.data):
            attrs = by_entity.get(row.entity_id)
            if attrs is None:
                by_entity[row.entity_id] = {row.attr}
            else:
                attrs.add(row.attr)
        await self.changed_many(by_entity)

    async def changed(self, entity_id: str, attrs: set[str] | None) -> None:
        """Queue an entity change for every subscription that watches it."""
        await self.changed_many({entity_id: attrs})

    async def changed_many(self, changes: dict[str, set[str] | None]) -> None:
        """Queue entity changes (entity id → changed attributes, None = any) for the subscriptions watching them."""
        if not changes or not self.watches:
            return
        directory: Directory = self.rt.ports.directory
        # this process may not have heard of an entity another process made a moment ago, nor know where an
        # entity loaded at start is: one store read for those of the batch, the rest from memory
        await directory.resolve(changes, places=any(w.area is not None for w in self.watches.values()))
        types = directory.types
        now = self.rt.now()
        typed = [(eid, types.get(eid), attrs) for eid, attrs in changes.items()]
        for w in self.watches.values():
            if not w.active or (w.expires and w.expires <= now):
                continue
            watched, put = w.watched, w.queue.put_nowait
            for eid, etype, attrs in typed:
                if watched is not None and attrs is not None and watched.isdisjoint(attrs):
                    continue
                if w.area is not None and not self._inside(directory.places.get(eid), w.area):
                    continue
                if w.selects(eid, etype):
                    put(eid)

    def _inside(self, place: str | None, area: str) -> bool:
        places = self.rt.ports.find(Ports.places)
        return place is not None and places is not None and place in places and places.within(place, area)

    async def _worker(self, w: Watch) -> None:
        while True:
            first = await w.queue.get()
            try:
                await self._notify(w, first)
            except asyncio.CancelledError:
                raise
            except Exception:  # the store failing for a moment must not end the subscription's worker
                log.exception("notification of subscription %s failed", w.id)

    async def _notify(self, w: Watch, first: str) -> None:
        """Send one notification of the entities queued (after the throttling slot, if any)."""
        ids = self._drain(w, [first])
        data = await self._matching(w, ids)
        if data and w.throttling > 0:
            await self._claim(w)
            # what changed while waiting goes into this notification, as it stands now
            data = await self._matching(w, self._drain(w, ids))
        if data:
            await self.send(w, [entity_out(e, w.ctx, w.fmt, w.attrs) for e in data])

    @staticmethod
    def _drain(w: Watch, ids: list[str]) -> list[str]:
        return list(dict.fromkeys(ids + [w.queue.get_nowait() for _ in range(w.queue.qsize())]))

    async def _matching(self, w: Watch, ids: list[str]) -> list[Entity]:
        found = await self.rt.store.get_entities(ids)
        return [e for e in (found.get(i) for i in ids)
                if e is not None and (w.q is None or w.q(e)) and (w.geo is None or w.geo(e))]

    async def _claim(self, w: Watch) -> None:
        """Wait for a throttled subscription's next slot, shared by every process: the stored status's
        lastNotification + throttling; then take it with a version-checked write (a conflict: look again)."""
        slept_on: int | None = None
        for _ in range(self.claim_tries):
            doc = await self.rt.store.get_doc(STATUS, w.id)
            version = doc.version if doc is not None else 0
            stored = doc.data if doc is not None else {}
            last = stored.get("lastNotification")
            if last and slept_on != version:
                wait = (parse_time(last) - self.rt.clock.now()).total_seconds() + w.throttling
                if wait > 0:
                    await asyncio.sleep(wait)
                    slept_on = version  # once per slot: with a fake clock, time would never pass
                    continue
            now = self.rt.now()
            if await self._write_status(w, doc, lastNotification=now):
                w.status["lastNotification"] = now
                w.saved_at = asyncio.get_running_loop().time()
                return
        log.warning("subscription %s: no throttling slot after %d tries; notifying", w.id, self.claim_tries)

    async def send(self, w: Watch, data: list[dict[str, Any]]) -> bool:
        """POST one notification, retrying with backoff; update the status."""
        body: dict[str, Any] = {"id": f"urn:ngsi-ld:Notification:{new_id()}", "type": "Notification",
                                "subscriptionId": w.id, "notifiedAt": self.rt.now(), "data": data}
        headers = {"Content-Type": "application/json"}
        cv = context_value(w.ctx)
        if w.accept == "application/ld+json":
            headers["Content-Type"] = "application/ld+json"
            body["@context"] = cv
        else:
            url = cv if isinstance(cv, str) else cv[0]
            headers["Link"] = f'<{url}>; rel="{JSONLD_REL}"; type="application/ld+json"'
        payload = orjson.dumps(body)
        if w.throttling <= 0:  # a throttled one stored it when it took its slot
            w.note(lastNotification=body["notifiedAt"])
        error = ""
        for attempt in range(self.retries + 1):
            try:
                await self.egress.check_uri(w.uri)  # resolved now: the name may point elsewhere since
                status = await self._post(w.uri, payload, headers)
                if status < 300:
                    w.note(lastSuccess=self.rt.now(), timesSent=1, status="ok")
                    await self._save(w)
                    return True
                error = f"HTTP {status}"  # a redirect (3xx) is not followed: it is a failure
            except EgressRefused as exc:
                error = f"refused: {exc}"
                break
            except (httpx.HTTPError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                refused = exc.__cause__ if isinstance(exc.__cause__, EgressRefused) else None
                error = f"refused: {refused}" if refused else f"{type(exc).__name__}: {exc}"
                if refused:
                    break
            if attempt < self.retries:
                await asyncio.sleep(self.backoff * 2**attempt)
        w.note(lastFailure=self.rt.now(), status="failed", lastError=error, timesFailed=1)
        await self._save(w)
        return False

    async def _post(self, uri: str, payload: bytes, headers: dict[str, str]) -> int:
        """POST a body; return the HTTP status (a client set on `self.client`, e.g. by tests, takes all)."""
        if self.client is not None:
            answer = await self.client.post(uri, content=payload, headers=headers)  # httpx: no redirects
            return answer.status_code
        if self.session is None or self.session.closed:
            # every address a name resolves to is checked when connecting (DNS rebinding), see egress.py
            self.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout), trust_env=True,
                connector=aiohttp.TCPConnector(limit_per_host=8, resolver=checked_resolver(self.egress)),
                headers={"User-Agent": "citybrain"})
        async with self.session.post(uri, data=payload, headers=headers, allow_redirects=False) as r:
            await r.read()
            return r.status

    async def _save(self, w: Watch) -> None:
        """Store the status changes, at most every `status_every` seconds per subscription: a busy
        subscription would otherwise cost one store commit per notification."""
        loop = asyncio.get_running_loop()
        wait = w.saved_at + self.status_every - loop.time()
        if wait <= 0:
            w.saved_at = loop.time()
            await self._store_status(w)
        elif not w.save_pending:
            w.save_pending = True
            self.rt.spawn(self._save_later(w, wait), name=f"ngsi-sub-status-{w.id}")

    async def _save_later(self, w: Watch, wait: float) -> None:
        await asyncio.sleep(wait)
        w.save_pending = False
        if self.watches.get(w.id) is w:
            w.saved_at = asyncio.get_running_loop().time()
            await self._store_status(w)

    async def _store_status(self, w: Watch) -> None:
        """Add this process's status changes to the stored status (version-checked; retried on a conflict)."""
        for _ in range(10):
            if not w.pending or await self._write_status(w, await self.rt.store.get_doc(STATUS, w.id)):
                return

    async def _write_status(self, w: Watch, doc: Doc | None, **taken: Any) -> bool:
        """Write the stored status `doc` plus this process's changes (and `taken`) if it is still at its
        version; False if another process wrote it meanwhile (the changes stay pending)."""
        version = doc.version if doc is not None else 0
        mine, w.pending = w.pending, {}
        delta = merge_status(mine, taken)
        w.in_flight = (version + 1, delta)
        try:
            await self.rt.store.apply([PutDoc(STATUS, w.id, merge_status(doc.data if doc else {}, delta),
                                              expect_version=version)])
            return True
        except (Conflict, AlreadyExists):
            w.pending = merge_status(mine, w.pending)
            return False
        except BaseException:
            w.pending = merge_status(mine, w.pending)
            raise
        finally:
            w.in_flight = None

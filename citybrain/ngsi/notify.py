"""Subscription notifications: match entity changes against subscriptions, send HTTP notifications.

Every change reaches the notifier from the bus: command events (cb.event.command.entity.*) and observation
batches (cb.obs). Each subscription has its own queue and worker task, so a slow or failing endpoint only
delays itself. Sends are retried with exponential backoff; status is kept per subscription.

Matching is batch-oriented: an observation batch is grouped by entity once and matched against every live
subscription with one clock reading. Notifications are posted with aiohttp (kept-alive connections, its C
HTTP parser, proxies from the environment): httpx cost about ten times more CPU per request, which on a busy
node is taken from ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
import orjson

from citybrain.bus import Message
from citybrain.context import new_id
from citybrain.events import decode_event
from citybrain.ingest.observations import OBS_SUBJECT, decode_rows
from citybrain.ngsi.convert import entity_out
from citybrain.ngsi.geo import GeoPredicate
from citybrain.ngsi.http import JSONLD_REL, context_value
from citybrain.ngsi.ldcontext import ActiveContext
from citybrain.ngsi.query import Predicate
from citybrain.store import PutDoc

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

STATUS = "ngsi_subscription_status"


@dataclass
class Watch:
    """A compiled subscription: what it watches and where it notifies."""

    id: str
    ctx: ActiveContext
    selectors: list[tuple[str | None, str | None, re.Pattern[str] | None]]  # (type, id, idPattern)
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
    status: dict[str, Any] = field(default_factory=lambda: {"timesSent": 0, "timesFailed": 0})
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    last_sent: float = 0.0
    saved_at: float = float("-inf")  # loop time of the last status write
    save_pending: bool = False
    area: str | None = None  # only entities placed in this place or below it (a place-scoped creator)

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


class Notifier:
    """Holds live subscriptions and their workers."""

    retries = 3
    backoff = 0.2  # seconds before the first retry; doubles each time
    timeout = 5.0
    status_every = 1.0  # seconds between status writes per subscription (the live status is in memory)

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self.watches: dict[str, Watch] = {}
        self.client: httpx.AsyncClient | None = None  # when set (tests), every notification goes through it
        self.session: aiohttp.ClientSession | None = None  # opened on the first notification
        rt.on_stop(self.close)

    async def start(self) -> None:
        """Listen to entity changes on the bus."""
        await self.rt.bus.subscribe("cb.event.command.entity.>", self._on_event)
        await self.rt.bus.subscribe(OBS_SUBJECT, self._on_obs)

    async def close(self) -> None:
        """Stop workers and the HTTP client; write the status that is still pending."""
        for w in self.watches.values():
            if w.task:
                w.task.cancel()
            if w.save_pending:
                with contextlib.suppress(Exception):
                    await self.rt.store.apply([PutDoc(STATUS, w.id, dict(w.status))])
        if self.client is not None:
            await self.client.aclose()
        if self.session is not None:
            await self.session.close()

    def put(self, watch: Watch) -> None:
        """Add or replace a subscription (keeps its status)."""
        old = self.watches.pop(watch.id, None)
        if old is not None:
            watch.status = old.status
            if old.task:
                old.task.cancel()
        self.watches[watch.id] = watch
        watch.task = self.rt.spawn(self._worker(watch), name=f"ngsi-sub-{watch.id}")

    def remove(self, sub_id: str) -> None:
        """Drop a subscription."""
        old = self.watches.pop(sub_id, None)
        if old is not None and old.task:
            old.task.cancel()

    async def _on_event(self, msg: Message) -> None:
        event = decode_event(msg.data)
        data = event.data
        if data.get("deleted") and "attrs" not in data:
            return
        ids = data.get("ids") or ([data["id"]] if isinstance(data.get("id"), str) else [])
        # an instance of a multi-attribute changes under "<name> <datasetId>": watchers name the attribute
        attrs = {a.partition(" ")[0] for a in data["attrs"]} if isinstance(data.get("attrs"), list) else None
        self.changed_many({eid: attrs for eid in ids})

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
        self.changed_many(by_entity)

    def changed(self, entity_id: str, attrs: set[str] | None) -> None:
        """Queue an entity change for every subscription that watches it."""
        self.changed_many({entity_id: attrs})

    def changed_many(self, changes: dict[str, set[str] | None]) -> None:
        """Queue entity changes (entity id → changed attributes, None = any) for the subscriptions watching them."""
        if not changes or not self.watches:
            return
        directory = self.rt.services["directory"]
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
        places = self.rt.services.get("places")
        return place is not None and places is not None and place in places and places.within(place, area)

    async def _worker(self, w: Watch) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await w.queue.get()
            wait = w.last_sent + w.throttling - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            ids = list(dict.fromkeys([first] + [w.queue.get_nowait() for _ in range(w.queue.qsize())]))
            found = await self.rt.store.get_entities(ids)
            data = [e for e in (found.get(i) for i in ids)
                    if e is not None and (w.q is None or w.q(e)) and (w.geo is None or w.geo(e))]
            if not data:
                continue
            w.last_sent = loop.time()
            await self.send(w, [entity_out(e, w.ctx, w.fmt, w.attrs) for e in data])

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
        w.status["lastNotification"] = body["notifiedAt"]
        error = ""
        for attempt in range(self.retries + 1):
            try:
                status = await self._post(w.uri, payload, headers)
                if status < 300:
                    w.status["lastSuccess"] = self.rt.now()
                    w.status["timesSent"] += 1
                    w.status["status"] = "ok"
                    await self._save(w)
                    return True
                error = f"HTTP {status}"
            except (httpx.HTTPError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                await asyncio.sleep(self.backoff * 2**attempt)
        w.status.update(lastFailure=self.rt.now(), status="failed", lastError=error)
        w.status["timesFailed"] += 1
        await self._save(w)
        return False

    async def _post(self, uri: str, payload: bytes, headers: dict[str, str]) -> int:
        """POST a body; return the HTTP status (a client set on `self.client`, e.g. by tests, takes all)."""
        if self.client is not None:
            answer = await self.client.post(uri, content=payload, headers=headers)
            return answer.status_code
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout), trust_env=True,
                connector=aiohttp.TCPConnector(limit_per_host=8), headers={"User-Agent": "citybrain"})
        async with self.session.post(uri, data=payload, headers=headers) as r:
            await r.read()
            return r.status

    async def _save(self, w: Watch) -> None:
        """Persist the status, at most every `status_every` seconds per subscription: a busy subscription
        would otherwise cost one store commit per notification. Readers use the in-memory status."""
        loop = asyncio.get_running_loop()
        wait = w.saved_at + self.status_every - loop.time()
        if wait <= 0:
            w.saved_at = loop.time()
            await self.rt.store.apply([PutDoc(STATUS, w.id, dict(w.status))])
        elif not w.save_pending:
            w.save_pending = True
            self.rt.spawn(self._save_later(w, wait), name=f"ngsi-sub-status-{w.id}")

    async def _save_later(self, w: Watch, wait: float) -> None:
        await asyncio.sleep(wait)
        w.save_pending = False
        if self.watches.get(w.id) is w:
            w.saved_at = asyncio.get_running_loop().time()
            await self.rt.store.apply([PutDoc(STATUS, w.id, dict(w.status))])

"""Admission control: shed writes with 503 when the node is behind, 429 a client over its rate.

A pure ASGI middleware in front of every route. For write requests (POST, PUT, PATCH, DELETE outside
`/-/` and `/metrics`) it answers, before any work is done:

* 503 `ShuttingDown` while the node drains for a graceful stop;
* 429 `TooManyRequests` when the client (API key, bearer token or address) has used up its token bucket;
* 503 `Overloaded` when the store writer has more than `max_pending` batches waiting, or more than
  `max_inflight` write requests are already being served.

Every refusal is an RFC 7807 problem with a `Retry-After` header, so a well-behaved client backs off and
the node recovers by itself when the offered load drops. It also tags each request with a context id
(`X-Request-Id`, echoed back) for the logs, and counts responses for /metrics.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from citybrain.ops.logs import current_context

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from citybrain.ops.metrics import OpsStats
    from citybrain.runtime import CityBrain

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_EXEMPT = ("/-/", "/metrics")


def route_of(scope: Scope) -> str:
    """Return the route template that answered a request (bounded label values), or 'unmatched'."""
    fast = scope.get("cb.route")
    if fast:
        return str(fast)
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else "unmatched"
_MAX_CLIENTS = 10_000


@dataclass
class Limits:
    """Admission bounds; 0 switches a bound off."""

    max_pending: int = 1024  # store write batches waiting (4 transactions of 256 batches)
    max_inflight: int = 256  # write requests being served at once
    client_rate: float = 2000.0  # write requests per second per client (token refill)
    client_burst: float = 4000.0  # bucket size
    retry_after: int = 1  # seconds suggested to a shed client

    @classmethod
    def from_runtime(cls, rt: CityBrain) -> Limits:
        """Read limits from settings.extra["admission"], then CITYBRAIN_ADMISSION_<NAME> variables."""
        limits = cls()
        given: dict[str, Any] = dict(rt.settings.extra.get("admission", {}))
        for name in ("max_pending", "max_inflight", "client_rate", "client_burst", "retry_after"):
            raw = rt.settings.env(f"ADMISSION_{name}") or None
            value = raw if raw is not None else given.get(name)
            if value is not None:
                setattr(limits, name, type(getattr(limits, name))(float(value)))
        return limits


class TokenBucket:
    """A token bucket: `rate` tokens a second up to `burst`."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, time.monotonic()

    def take(self) -> float:
        """Take one token; return 0 if granted, else the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def client_key(scope: Scope) -> str:
    """Identify the client: its API key or bearer token (hashed), else its address."""
    for name, value in scope.get("headers", []):
        if name in (b"x-api-key", b"authorization"):
            return "k:" + hashlib.sha1(value).hexdigest()[:16]
    client = scope.get("client")
    return f"a:{client[0]}" if client else "a:?"


class Admission:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, rt: CityBrain, stats: OpsStats, limits: Limits | None = None) -> None:
        self.app = app
        self.rt = rt
        self.stats = stats
        self.limits = limits or Limits.from_runtime(rt)
        self.buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit, shed or pass a request; count its response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                rid = value.decode("latin-1")[:64]
        rid = rid or uuid.uuid4().hex[:16]
        token = current_context.set(rid)
        path: str = scope.get("path", "")
        write = scope.get("method", "GET") in WRITE_METHODS and not path.startswith(_EXEMPT)
        admitted = False
        try:
            if write:
                refusal = self.refuse(scope)
                if refusal is not None:
                    await self._problem(send, rid, *refusal)
                    return
                self.stats.inflight += 1
                admitted = True
            await self._serve(scope, receive, send, rid, write)
        finally:
            if admitted:
                self.stats.inflight -= 1
            current_context.reset(token)

    def refuse(self, scope: Scope) -> tuple[int, str, str, int] | None:
        """Return (status, title, detail, retry-after) when a write must be refused now, else None."""
        lim = self.limits
        if self.stats.draining:
            return 503, "ShuttingDown", "the node is shutting down; retry on another node or later", lim.retry_after
        if lim.client_rate > 0:
            key = client_key(scope)
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = TokenBucket(lim.client_rate, max(1.0, lim.client_burst))
                if len(self.buckets) > _MAX_CLIENTS:
                    self.buckets.popitem(last=False)
            else:
                self.buckets.move_to_end(key)
            wait = bucket.take()
            if wait > 0:
                return (429, "TooManyRequests", f"over {lim.client_rate:g} write requests/s for this client",
                        max(1, math.ceil(wait)))
        pending = self.rt.store.pending
        if lim.max_pending and pending >= lim.max_pending:
            return 503, "Overloaded", f"store writer is behind ({pending} batches waiting)", lim.retry_after
        if lim.max_inflight and self.stats.inflight >= lim.max_inflight:
            return (503, "Overloaded", f"{self.stats.inflight} write requests already in progress",
                    lim.retry_after)
        return None

    async def _serve(self, scope: Scope, receive: Receive, send: Send, rid: str, write: bool) -> None:
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.stats.observe(status[0], time.perf_counter() - start, write, route_of(scope), scope["method"])

    async def _problem(self, send: Send, rid: str, status: int, title: str, detail: str, retry: int) -> None:
        self.stats.shed[title] = self.stats.shed.get(title, 0) + 1
        self.stats.observe(status, 0.0, True, "shed", "-")
        body = orjson.dumps({"type": f"https://citybrain.dev/errors/{title}", "title": title, "status": status,
                             "detail": detail, "retry_after": retry})
        headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode()),
                   (b"retry-after", str(retry).encode()), (b"x-request-id", rid.encode("latin-1"))]
        if title == "ShuttingDown":
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

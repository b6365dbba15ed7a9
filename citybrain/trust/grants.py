"""Authorised operation (公共数据授权运营): grants of a dataset to a user or organisation.

request (external user, data officer …) -> approve (data officer or admin, never the requester) ->
use (GET /api/v1/data/{dataset}) -> revoke. A grant names its purpose, the allowed fields (the
others are dropped or masked), an area, a rate limit and an expiry.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from citybrain.clock import normalise_time
from citybrain.commands import Outcome
from citybrain.context import Context, new_id
from citybrain.documents import Document, DocumentType
from citybrain.errors import Conflict, Forbidden, NotFound, TooManyRequests, ValidationError
from citybrain.ports import Ports
from citybrain.trust.catalog import get_dataset
from citybrain.trust.identity import role_of

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

GRANTS = "grants"
APPROVERS = ("admin", "data_officer", "system")


class Grant(Document, kw_only=True):
    """A dataset granted to a grantee for a purpose, with field, area, rate and time limits."""

    id: str
    dataset: str
    grantee: str  # identity name that may use it
    organisation: str = ""
    purpose: str
    fields: list[str] | None = None  # None = every field of the dataset
    masking: Literal["drop", "mask"] = "drop"  # what happens to the other fields
    area: str | None = None  # place URN: only rows in this place or below
    rate_limit: int = 60  # requests per minute
    expires: str  # UTC ISO 8601
    status: Literal["requested", "approved", "revoked", "rejected"] = "requested"
    requested_by: str = ""
    approved_by: str = ""
    reason: str = ""
    revoked_by: str = ""


class RequestGrant(msgspec.Struct, kw_only=True):
    """Ask for a dataset for a purpose."""

    dataset: str
    purpose: str
    grantee: str | None = None  # default: the requesting identity
    organisation: str = ""
    fields: list[str] | None = None
    area: str | None = None
    rate_limit: int = 60
    expires: str


class ApproveGrant(msgspec.Struct, kw_only=True):
    """Approve a requested grant, optionally narrowing it."""

    id: str
    fields: list[str] | None = None
    masking: Literal["drop", "mask"] | None = None
    area: str | None = None
    rate_limit: int | None = None
    expires: str | None = None


class RevokeGrant(msgspec.Struct, kw_only=True):
    """Revoke (or reject) a grant."""

    id: str
    reason: str = ""


def name_of(actor: str) -> str:
    """Return the identity name at the end of an actor string."""
    return actor.rsplit(":", 1)[-1]


GRANT_DOCS = DocumentType(GRANTS, Grant, version=1)


async def get_grant(rt: CityBrain, grant_id: str) -> tuple[Grant, int]:
    """Return a grant and its version, or raise NotFound."""
    doc = await rt.store.get_doc(GRANTS, grant_id)
    if doc is None:
        raise NotFound(f"unknown grant {grant_id}", field="grant")
    return GRANT_DOCS.load(doc.data), doc.version


async def request_grant(rt: CityBrain, cmd: RequestGrant, ctx: Context) -> Outcome:
    """Record a grant request."""
    ds = await get_dataset(rt, cmd.dataset)
    bad = [f for f in cmd.fields or [] if ds.fields and f not in ds.fields]
    if bad:
        raise ValidationError(f"fields: {', '.join(bad)} not in dataset {ds.id}", field="fields")
    if not cmd.purpose.strip():
        raise ValidationError("purpose: say what the data is for", field="purpose")
    places = rt.ports.find(Ports.places)
    if cmd.area is not None and places is not None and cmd.area not in places:
        raise ValidationError(f"area: unknown place {cmd.area}", field="area")
    grant = Grant(id=new_id(), dataset=ds.id, grantee=cmd.grantee or name_of(ctx.actor), organisation=cmd.organisation,
                  purpose=cmd.purpose, fields=cmd.fields, area=cmd.area, rate_limit=max(cmd.rate_limit, 1),
                  expires=normalise_time(cmd.expires, "expires"), requested_by=ctx.actor)
    data = GRANT_DOCS.dump(grant)
    return Outcome(ops=[GRANT_DOCS.put(grant, expect_version=0)], result=data, event=data)


async def approve_grant(rt: CityBrain, cmd: ApproveGrant, ctx: Context) -> Outcome:
    """Approve a requested grant (data officer or admin, not the requester)."""
    if role_of(ctx.actor) not in APPROVERS:
        raise Forbidden("only a data officer approves grants")
    grant, version = await get_grant(rt, cmd.id)
    if grant.status != "requested":
        raise Conflict(f"grant {grant.id} is {grant.status}, not requested", field="id")
    if name_of(grant.requested_by) == name_of(ctx.actor) and role_of(ctx.actor) != "system":
        raise Forbidden("a grant is approved by someone other than its requester")
    changes: dict[str, Any] = {"status": "approved", "approved_by": ctx.actor}
    if cmd.fields is not None:
        changes["fields"] = [f for f in cmd.fields if grant.fields is None or f in grant.fields]
    for key in ("masking", "area", "rate_limit"):
        if getattr(cmd, key) is not None:
            changes[key] = getattr(cmd, key)
    if cmd.expires is not None:
        changes["expires"] = min(normalise_time(cmd.expires, "expires"), grant.expires)
    approved = msgspec.structs.replace(grant, **changes)
    data = GRANT_DOCS.dump(approved)
    return Outcome(ops=[GRANT_DOCS.put(approved, expect_version=version)], result=data, event=data)


async def revoke_grant(rt: CityBrain, cmd: RevokeGrant, ctx: Context) -> Outcome:
    """Revoke an approved grant or reject a requested one (data officer, admin, or the grantee itself)."""
    grant, version = await get_grant(rt, cmd.id)
    if role_of(ctx.actor) not in APPROVERS and name_of(ctx.actor) != grant.grantee:
        raise Forbidden("only a data officer or the grantee revokes a grant")
    if grant.status in ("revoked", "rejected"):
        raise Conflict(f"grant {grant.id} is already {grant.status}", field="id")
    status = "revoked" if grant.status == "approved" else "rejected"
    ended = msgspec.structs.replace(grant, status=status, reason=cmd.reason, revoked_by=ctx.actor)
    data = GRANT_DOCS.dump(ended)
    return Outcome(ops=[GRANT_DOCS.put(ended, expect_version=version)], result=data, event=data)


def check_usable(grant: Grant, grantee: str, dataset: str, now: str) -> None:
    """Raise Forbidden unless the grant is approved, unexpired, for this grantee and dataset."""
    if grant.dataset != dataset:
        raise Forbidden(f"grant {grant.id} is for dataset {grant.dataset}", field="grant")
    if grant.grantee != grantee:
        raise Forbidden(f"grant {grant.id} is not yours", field="grant")
    if grant.status != "approved":
        raise Forbidden(f"grant {grant.id} is {grant.status}", field="grant")
    if now >= grant.expires:
        raise Forbidden(f"grant {grant.id} expired at {grant.expires}", field="grant")


class RateLimiter:
    """A sliding one-minute window per grant (in memory, per node)."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def hit(self, key: str, per_minute: int, now: float | None = None) -> None:
        """Count one request or raise TooManyRequests naming when to retry."""
        t = time.monotonic() if now is None else now
        hits = self._hits[key]
        while hits and t - hits[0] >= 60:
            hits.popleft()
        if len(hits) >= per_minute:
            retry = max(1, int(60 - (t - hits[0])) + 1)
            raise TooManyRequests(f"rate limit of {per_minute} requests/minute reached", retry_after=retry)
        hits.append(t)


def register(rt: CityBrain) -> None:
    """Register the grant commands."""
    rt.commands.register("grant.request", RequestGrant, request_grant, "ask for a dataset for a purpose")
    rt.commands.register("grant.approve", ApproveGrant, approve_grant, "approve a grant request", ("admin", "data_officer"))
    rt.commands.register("grant.revoke", RevokeGrant, revoke_grant, "revoke or reject a grant")

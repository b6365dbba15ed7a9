"""The ledger's HTTP API: latest checkpoint, public key, entries, inclusion and consistency proofs."""

from __future__ import annotations

import base64

from fastapi import APIRouter, FastAPI, Query, Request, Response

from citybrain.api.routes import json, rt_of
from citybrain.errors import NotFound, Unavailable, ValidationError
from citybrain.ledger.merkle import leaf_hash
from citybrain.ledger.service import WITNESS_HEADS, LedgerService
from citybrain.ports import Ports
from citybrain.runtime import CityBrain

router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"])
NOTE = "text/plain; charset=utf-8"


def b64(h: bytes) -> str:
    """Return standard base64 of a hash."""
    return base64.b64encode(h).decode()


def ledger_of(request: Request) -> LedgerService:
    """Return the node's ledger service or raise Unavailable."""
    service = rt_of(request).ports.find_own(Ports.ledger, LedgerService)
    if service is None:
        raise Unavailable("the ledger is not running on this node")
    return service


def _size(service: LedgerService, size: int | None, name: str) -> int:
    size = service.log.latest_size if size is None else size
    if not 0 < size <= service.log.size:
        raise ValidationError(f"{name}: tree size {size} out of range (1..{service.log.size})", field=name)
    return size


@router.get("/checkpoint")
async def checkpoint(request: Request) -> Response:
    """Return the latest signed checkpoint (a C2SP signed note)."""
    note = ledger_of(request).log.latest
    if not note:
        raise NotFound("no checkpoint has been signed yet")
    return Response(note, media_type=NOTE)


@router.get("/key")
async def key(request: Request) -> Response:
    """Return the log's public verifier key (vkey) for checking checkpoints."""
    return Response(ledger_of(request).vkey + "\n", media_type=NOTE)


@router.get("/proof/inclusion")
async def inclusion(request: Request, index: int = Query(..., ge=0), size: int | None = Query(None, ge=1)) -> Response:
    """Return the inclusion proof of entry `index` in the tree of `size` (default: latest checkpoint)."""
    service = ledger_of(request)
    n = _size(service, size, "size")
    if index >= n:
        raise ValidationError(f"index: {index} is not below tree size {n}", field="index")
    [(_, entry)] = await service.log.entries(index, index + 1)
    return json({"index": index, "size": n, "leaf_hash": b64(leaf_hash(entry)), "root": b64(service.log.root(n)),
                 "proof": [b64(h) for h in service.log.inclusion_proof(index, n)]})


@router.get("/proof/consistency")
async def consistency(request: Request, from_: int = Query(..., alias="from", ge=1),
                      to: int | None = Query(None, ge=1)) -> Response:
    """Return the consistency proof from tree size `from` to `to` (default: latest checkpoint)."""
    service = ledger_of(request)
    n = _size(service, to, "to")
    if from_ > n:
        raise ValidationError(f"from: {from_} is larger than to ({n})", field="from")
    return json({"from": from_, "to": n, "old_root": b64(service.log.root(from_)), "root": b64(service.log.root(n)),
                 "proof": [b64(h) for h in service.log.consistency_proof(from_, n)]})


@router.get("/entries")
async def entries(request: Request, start: int = Query(0, ge=0), end: int | None = Query(None, ge=0)) -> Response:
    """Return entries [start, end) (at most 1000): the exact entry text and its leaf hash."""
    service = ledger_of(request)
    stop = min(start + 1000, service.log.size if end is None else end)
    got = await service.log.entries(start, stop)
    return json([{"index": i, "entry": e.decode(), "leaf_hash": b64(leaf_hash(e))} for i, e in got])


@router.get("/witnessed")
async def witnessed(request: Request) -> Response:
    """Return the latest checkpoint this node has witnessed from each community node."""
    docs = await rt_of(request).store.list_docs(WITNESS_HEADS)
    return json([d.data for d in docs])


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Add the ledger routes."""
    app.include_router(router)

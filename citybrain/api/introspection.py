"""Health and introspection: /-/health, /-/version, /-/settings, /-/commands."""

from __future__ import annotations

import asyncio
import platform
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from citybrain import __version__
from citybrain.config import SETTING_HELP
from citybrain.errors import CityBrainError
from citybrain.runtime import CityBrain

router = APIRouter(prefix="/-", tags=["introspection"])
PING_TIMEOUT = 2.0  # seconds a dependency has to answer /-/health (a dead PostgreSQL would hold its pool timeout)


def runtime(request: Request) -> CityBrain:
    """Return the runtime serving this request."""
    rt: CityBrain = request.app.state.rt
    return rt


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """Report whether the store and the bus answer; 503 when degraded."""
    rt = runtime(request)
    checks: dict[str, Any] = {}
    for name, part in (("store", rt.store), ("bus", rt.bus)):
        try:
            await asyncio.wait_for(part.ping(), PING_TIMEOUT)
            checks[name] = {"status": "ok"}
        except TimeoutError:
            checks[name] = {"status": "down", "detail": f"no answer within {PING_TIMEOUT:g} s"}
        except CityBrainError as exc:
            checks[name] = {"status": "down", "detail": exc.detail}
        except Exception as exc:  # any failure of a dependency is "down", never a 500
            checks[name] = {"status": "down", "detail": repr(exc)}
    ok = all(c["status"] == "ok" for c in checks.values())
    body = {"status": "ok" if ok else "degraded", "node": rt.node_id, "role": rt.settings.role,
            "started_at": rt.started_at, "checks": checks, "pending_writes": rt.store.pending}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/version")
async def version() -> dict[str, Any]:
    """Return citybrain's and its platform's versions."""
    import sqlite3

    import fastapi
    import msgspec

    return {"citybrain": __version__, "python": platform.python_version(), "fastapi": fastapi.__version__,
            "msgspec": msgspec.__version__, "sqlite": sqlite3.sqlite_version}


@router.get("/settings")
async def settings(request: Request) -> dict[str, Any]:
    """Return the node's settings with secrets redacted, and what each one means."""
    rt = runtime(request)
    return {"settings": rt.settings.public(), "help": SETTING_HELP}


@router.get("/cluster")
async def cluster(request: Request) -> dict[str, Any]:
    """Return this process among the node's processes: its id, the members, its jobs and partitions."""
    return runtime(request).cluster.describe()


@router.get("/commands")
async def commands(request: Request) -> list[dict[str, Any]]:
    """List the registered commands."""
    rt = runtime(request)
    return [{"name": s.name, "summary": s.summary, "roles": list(s.roles)} for s in rt.commands]

"""HTTP API of plans: /api/v1/plans (plans with their live run, runs, tasks) and the plan commands."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response

from citybrain.api.routes import context_of, json, read_json, rt_of
from citybrain.errors import NotFound
from citybrain.plans import PlanDesk
from citybrain.plans.commands import RUNS
from citybrain.plans.tasks import TASKS
from citybrain.ports import Ports
from citybrain.runtime import CityBrain

router = APIRouter(prefix="/api/v1/plans", tags=["plans"])
ACTIONS = {"propose": "plan.propose", "confirm": "plan.confirm", "reject": "plan.reject", "end": "plan.end",
           "close": "plan.close"}


@router.get("")
async def plans(request: Request) -> Response:
    """List the loaded plans, each with its live run (if any), as stored (another process may have stepped it)."""
    desk = rt_of(request).ports.own(Ports.plans, PlanDesk)
    await desk.load()
    return json(desk.listing())


@router.get("/runs")
async def runs(request: Request) -> Response:
    """List plan runs, newest first."""
    docs = [d.data for d in await rt_of(request).store.list_docs(RUNS, limit=10_000)]
    return json(sorted(docs, key=lambda r: r["proposed_at"], reverse=True))


@router.get("/runs/{run_id}/tasks")
async def tasks(request: Request, run_id: str) -> Response:
    """List the tasks a run issued."""
    return json([d.data for d in await rt_of(request).store.list_docs(TASKS, {"run": run_id}, limit=100_000)])


@router.post("/{action}")
async def act(request: Request, action: str) -> Response:
    """Run plan.<action> (propose, confirm, reject, end, close) with the JSON body as payload."""
    if action not in ACTIONS:
        raise NotFound(f"unknown plan action {action!r}; one of {', '.join(ACTIONS)}", field="action")
    rt = rt_of(request)
    body = await read_json(request)
    return json(await rt.execute(ACTIONS[action], body, context_of(request)))


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Add the plans routes."""
    app.include_router(router)

"""HTTP API under /api/v1/cases and /api/v1/matters: lists with filters, a case with its timeline, every step."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request, Response

from citybrain.api.routes import actor_of, context_of, json, read_json, rt_of
from citybrain.cases import views
from citybrain.cases.deadlines import check_deadlines
from citybrain.cases.desk import desk_of
from citybrain.cases.matters import citizen_status
from citybrain.cases.model import role_of
from citybrain.confine import confine
from citybrain.errors import Forbidden, NotFound, ValidationError
from citybrain.runtime import CityBrain

router = APIRouter(prefix="/api/v1", tags=["cases"])

# step in the URL -> command; the body carries the rest of the command's fields
STEPS = {"file": "case.file", "dispatch": "case.dispatch", "accept": "case.accept", "feedback": "case.feedback",
         "verify": "case.verify", "close": "case.close", "evaluate": "case.evaluate", "merge": "case.merge",
         "exception": "case.request_exception", "approve": "case.approve_exception", "resume": "case.resume"}


@router.get("/cases")
async def list_cases(
    request: Request,
    state: str | None = None,
    department: str | None = None,
    overdue: bool | None = None,
    category: str | None = None,
    queue: str | None = Query(None, description="e.g. command-centre: cases waiting for a person to dispatch"),
    channel: str | None = None,
    place: str | None = Query(None, description="cases in this place or any place below it"),
    limit: int = Query(100, ge=1, le=10000),
    offset: int = Query(0, ge=0),
) -> Response:
    """List cases, newest first, filtered by state, department, overdue, category, queue, channel."""
    rt = rt_of(request)
    place = confine(request, place)  # a place-scoped identity sees only its own area
    if place is not None and place not in rt.ports.places:
        raise NotFound(f"unknown place {place}", field="place")
    found = await views.find(rt, state, department, overdue, category, queue, channel, place=place)
    page = found[offset:offset + limit]
    return json([_brief(c) for c in page], headers={"X-Total-Count": str(len(found))})


def _brief(c: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "kind", "state", "category", "title", "place", "channel", "departments", "queue", "overdue",
            "deadline", "created_at", "updated_at")
    return {k: c.get(k) for k in keys}


@router.post("/cases", status_code=201)
async def report(request: Request) -> Response:
    """Report a problem (case.intake); trusted channels are filed and routed at once."""
    rt = rt_of(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ValidationError("body: expected a JSON object", field="body")
    result = await desk_of(rt).submit(body, context_of(request))
    return json(result, status=201, headers={"Location": f"/api/v1/cases/{result['id']}"})


@router.get("/cases/catalog")
async def catalog(request: Request) -> Response:
    """Return the categories, departments and routing rules in force."""
    cat = desk_of(rt_of(request)).catalog
    return json({"categories": [c.to_dict() for c in cat.categories.values()],
                 "departments": {d.id: {"zh": d.zh, "en": d.en} for d in cat.router.departments.values()},
                 "command_centre": cat.router.command_centre, "deadlines": cat.policy, "alerts": cat.alerts})


@router.get("/cases/stats")
async def case_stats(request: Request) -> Response:
    """Counts by state and the share of cases routed to a department without the command centre."""
    return json(await views.stats(rt_of(request)))


@router.get("/cases/ledger")
async def ledger(request: Request) -> Response:
    """The problem ledger (挂账): suspended cases."""
    return json([_brief(c) for c in await views.find(rt_of(request), state="suspended")])


@router.post("/cases/check-deadlines")
async def run_checker(request: Request) -> Response:
    """Run the deadline checker now (command centre or system)."""
    rt = rt_of(request)
    if role_of(actor_of(request)) not in ("command", "system"):
        raise Forbidden("only the command centre may run the deadline checker", field="actor")
    return json(await check_deadlines(rt))


@router.get("/cases/{case_id}")
async def get_case(request: Request, case_id: str) -> Response:
    """Return one case with its tasks, clocks, exceptions and full timeline."""
    rt = rt_of(request)
    doc = await rt.store.get_doc("cases", case_id)
    if doc is None:
        raise NotFound(f"case {case_id} not found", field="case_id")
    return json(views.with_clocks(rt, doc.data) | {"version": doc.version})


@router.post("/cases/{case_id}/{step}")
async def case_step(request: Request, case_id: str, step: str) -> Response:
    """Run one step of a case (see STEPS); the JSON body carries the command's other fields."""
    rt = rt_of(request)
    if step not in STEPS:
        raise NotFound(f"unknown case step {step!r}; one of {', '.join(STEPS)}", field="step")
    raw = await request.body()
    body = await read_json(request) if raw.strip() else {}
    if not isinstance(body, dict):
        raise ValidationError("body: expected a JSON object", field="body")
    ctx = context_of(request)
    if step == "file":
        return json(await desk_of(rt).file(case_id, ctx, str(body.get("note", ""))))
    # a step that loses a race with another process (or met a stale cached copy) is tried once more on fresh state
    return json(await desk_of(rt).run(STEPS[step], body | {"id": case_id}, ctx, retries=2))


@router.get("/matters")
async def matter_templates(request: Request) -> Response:
    """List the one-matter services (一件事) and their department steps."""
    cat = desk_of(rt_of(request)).catalog
    return json([{"code": m.code, "zh": m.zh, "en": m.en,
                  "tasks": [{"department": t.department, "zh": t.zh, "en": t.en, "hours": t.hours} for t in m.tasks]}
                 for m in cat.matters.values()])


@router.post("/matters", status_code=201)
async def apply_matter(request: Request) -> Response:
    """Apply for a one-matter service; returns the tracking number."""
    rt = rt_of(request)
    body = await read_json(request)
    result = await rt.execute("matter.apply", body, context_of(request))
    return json({"tracking_number": result["id"], "state": result["state"]}, status=201)


@router.get("/matters/{tracking}")
async def matter_status(request: Request, tracking: str) -> Response:
    """Return the one status a citizen sees for a matter."""
    doc = await rt_of(request).store.get_doc("cases", tracking)
    if doc is None or doc.data.get("kind") != "matter":
        raise NotFound(f"no matter with tracking number {tracking}", field="tracking")
    return json(citizen_status(doc.data))


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Add the case routes to the app."""
    app.include_router(router)

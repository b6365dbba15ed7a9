"""The authorization policy: request path -> endpoint family, and role x family -> allowed actions.

Deny by default: a path that maps to no family is refused, and a role may do only what POLICY lists.
Actions are "read" (GET, HEAD, OPTIONS) and "write" (everything else). Other components add their
path prefixes with `add_family(prefix, family)` before the app serves requests.
"""

from __future__ import annotations

from typing import Literal

Action = Literal["read", "write"]
R: frozenset[str] = frozenset({"read"})
W: frozenset[str] = frozenset({"write"})
RW: frozenset[str] = R | W

# Families anyone may use without credentials.
PUBLIC = "public"
# Path prefix -> family; the longest matching prefix wins. "/" and the dashboard pages need a login.
FAMILIES: dict[str, str] = {
    "/-/health": PUBLIC, "/-/version": PUBLIC, "/api/v1/auth/token": PUBLIC, "/api/v1/auth/session": PUBLIC,
    "/api/v1/auth/logout": PUBLIC,
    "/api/v1/ledger/checkpoint": PUBLIC, "/api/v1/ledger/key": PUBLIC,
    "/-/": "introspection", "/metrics": "metrics", "/docs": "login", "/redoc": "login", "/openapi.json": "login",
    "/static/": "login", "/community/": "login", "/case/": "login", "/api/v1/auth/": "login",
    "/api/v1/commands": "login",
    "/api/v1/map/": "dashboard", "/api/v1/dashboard": "dashboard", "/api/v1/stream": "dashboard",
    "/api/v1/entities": "model", "/api/v1/places": "model", "/api/v1/stats": "model",
    "/api/v1/observations": "ingest", "/api/v1/deadletters": "admin", "/api/v1/users": "admin",
    "/ngsi-ld/v1/": "ngsi", "/open311/v2/": "open311",
    "/api/v1/cases": "cases", "/api/v1/matters": "cases", "/api/v1/desk": "cases",
    "/api/v1/alerts": "situation", "/api/v1/risk": "situation", "/api/v1/situation": "situation",
    "/api/v1/rules": "situation", "/api/v1/detect": "situation",
    "/api/v1/modes": "modes", "/api/v1/mode": "modes", "/api/v1/plans": "modes", "/api/v1/directives": "modes",
    "/api/v1/drills": "modes", "/api/v1/resources": "modes", "/api/v1/dispatch": "modes",
    "/api/v1/federation": "federation", "/api/v1/communities": "federation", "/api/v1/nodes": "federation",
    "/api/v1/catalog": "catalog", "/api/v1/grants": "catalog", "/api/v1/data/": "data",
    "/api/v1/ledger/": "ledger", "/api/v1/events": "events",
    "/api/v1/indicators": "indicators", "/api/v1/reports": "indicators",
}
EXACT: dict[str, str] = {"/": "login", "/login": PUBLIC, "/-/health": PUBLIC, "/-/version": PUBLIC}

# Command name prefix -> family, for POST /api/v1/commands/{name}; unknown prefixes are admin only.
COMMAND_FAMILIES: dict[str, str] = {
    "entity.": "model", "observations.": "ingest", "case.": "cases", "matter.": "cases",
    "alert.": "situation", "risk.": "situation", "situation.": "situation", "rule.": "situation",
    "mode.": "modes", "plan.": "modes", "directive.": "modes", "drill.": "modes", "dispatch.": "modes",
    "resource.": "modes", "incident.": "modes", "federation.": "federation", "community.": "federation",
    "catalog.": "catalog", "grant.": "catalog", "ledger.": "ledger", "indicator.": "indicators",
    "report.": "indicators", "user.": "admin",
}

_ops = {"login": R, "dashboard": R, "model": R, "ngsi": R, "open311": RW, "cases": RW, "situation": R,
        "modes": R, "catalog": R, "indicators": R}
POLICY: dict[str, dict[str, frozenset[str]]] = {
    "admin": {},  # everything, see allowed()
    "city_operator": _ops | {"model": RW, "ingest": RW, "ngsi": RW, "situation": RW, "modes": RW,
                             "federation": RW, "ledger": R, "indicators": RW, "events": R, "introspection": R,
                             "metrics": R},
    "command_centre": _ops | {"situation": RW, "modes": RW, "federation": R, "ledger": R, "events": R},
    "supervisor": _ops | {"federation": R, "ledger": R, "events": R},
    "department_handler": dict(_ops),
    "community_operator": _ops | {"situation": RW, "receipts": W, "federation": R},
    "grid_worker": {"login": R, "dashboard": R, "model": R, "ingest": W, "open311": RW, "cases": RW,
                    "situation": R, "receipts": W},
    "data_officer": {"login": R, "model": R, "catalog": RW, "data": R, "ledger": R, "indicators": R,
                     "events": R},
    "auditor": {f: R for f in ("login", "dashboard", "model", "ngsi", "open311", "cases", "situation", "modes",
                               "federation", "catalog", "ledger", "indicators", "events", "introspection",
                               "metrics")},
    "external_user": {"login": R, "catalog": RW, "data": R, "open311": RW},
    "device": {"ingest": W, "ngsi": RW},
    # operations staff and monitoring: Prometheus metrics and the (redacted) introspection pages, no city data
    "ops": {"introspection": R, "metrics": R},
}
FAMILY_NAMES: tuple[str, ...] = tuple(sorted(set(FAMILIES.values()) | {"admin", "ledger", "receipts"}))


def add_family(prefix: str, family: str) -> None:
    """Map a further path prefix to a family (for components added later)."""
    FAMILIES[prefix] = family


def action_of(method: str) -> Action:
    """Return the action a request method performs."""
    return "read" if method.upper() in ("GET", "HEAD", "OPTIONS") else "write"


def family_of(path: str) -> str | None:
    """Return the endpoint family of a path (longest matching prefix), or None if unknown (denied)."""
    if path in EXACT:
        return EXACT[path]
    if path.startswith("/api/v1/directives/") and path.rstrip("/").endswith(("/read", "/done")):
        return "receipts"  # a community acknowledges a directive it received
    best = ""
    for prefix in FAMILIES:
        if len(prefix) > len(best) and (path.startswith(prefix) or path == prefix.rstrip("/")):
            best = prefix
    return FAMILIES[best] if best else None


def command_family(name: str) -> str:
    """Return the family a command belongs to (admin for unknown prefixes)."""
    for prefix, family in COMMAND_FAMILIES.items():
        if name.startswith(prefix):
            return family
    return "admin"


def allowed(role: str, family: str, action: str) -> bool:
    """Return True iff `role` may perform `action` on `family`."""
    if family == PUBLIC or role == "admin":
        return True
    return action in POLICY.get(role, {}).get(family, frozenset())

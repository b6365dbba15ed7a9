"""Open311 GeoReport v2 vocabulary: field lists, JSON and XML rendering, the spec's error format."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

import orjson
from fastapi import Response

from citybrain.cases.catalog import Category
from citybrain.cases.model import FINAL
from citybrain.cases.routing import Router
from citybrain.clock import parse_time

SERVICE_FIELDS = ("service_code", "service_name", "description", "metadata", "type", "keywords", "group")
DEFINITION_FIELDS = ("service_code", "attributes")
REQUEST_FIELDS = ("service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url")
CREATED_FIELDS = ("service_request_id", "service_notice", "account_id", "token")
TOKEN_FIELDS = ("service_request_id", "token")
JSON_TYPE = "application/json; charset=utf-8"
XML_TYPE = "text/xml; charset=utf-8"


class Open311Error(Exception):
    """An error answered in the spec's format: [{"code": 400, "description": "…"}] or <errors>."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def w3c(value: str | None) -> str | None:
    """Format a stored UTC timestamp as W3C date-time with seconds precision."""
    if not value:
        return None
    return parse_time(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def service(cat: Category) -> dict[str, Any]:
    """Return a category as an Open311 service."""
    return {"service_code": cat.code, "service_name": f"{cat.en} {cat.zh}",
            "description": "; ".join(cat.filing) or cat.en, "metadata": False, "type": "realtime",
            "keywords": ", ".join([cat.kind, cat.group_en]), "group": cat.group_en}


def request_view(case: dict[str, Any], cat: Category | None, router: Router) -> dict[str, Any]:
    """Return a case as an Open311 service request."""
    loc = case.get("location") or {}
    lead = next((t["department"] for t in case.get("tasks", []) if t["role"] == "lead" and t["state"] != "withdrawn"),
                None)
    dept = router.departments.get(lead) if lead else None
    notes = next((e["note"] for e in reversed(case["timeline"]) if e.get("note")), "")
    notice = "awaiting assignment by the command centre" if case.get("queue") else ""
    if case["state"] == "merged":
        notice = f"merged into {case.get('merged_into')}"
    return {"service_request_id": case["id"], "status": "closed" if case["state"] in FINAL else "open",
            "status_notes": f"{case['state']}: {notes}" if notes else case["state"],
            "service_name": f"{cat.en} {cat.zh}" if cat else case["category"], "service_code": case["category"],
            "description": case.get("description", ""), "agency_responsible": f"{dept.en} {dept.zh}" if dept else "",
            "service_notice": notice, "requested_datetime": w3c(case["created_at"]),
            "updated_datetime": w3c(case["updated_at"]), "expected_datetime": w3c(case.get("deadline")),
            "address": case.get("address", ""), "address_id": (case.get("attributes") or {}).get("address_id", ""),
            "zipcode": (case.get("attributes") or {}).get("zipcode", ""), "lat": loc.get("lat"),
            "long": loc.get("lon"), "media_url": case.get("media_url", "")}


def _xml_value(parent: ET.Element, name: str, value: Any) -> None:
    el = ET.SubElement(parent, name)
    if isinstance(value, list):
        for item in value:
            _xml_item(el, "attribute" if name == "attributes" else "value", item)
    elif isinstance(value, bool):
        el.text = "true" if value else "false"
    elif value is not None:
        el.text = str(value)


def _xml_item(parent: ET.Element, tag: str, item: dict[str, Any]) -> None:
    el = ET.SubElement(parent, tag)
    for k, v in item.items():
        _xml_value(el, k, v)


def render(data: Any, fmt: str, root: str, item: str, status: int = 200) -> Response:
    """Return a list of objects as JSON, or as XML <root><item>…</item></root>."""
    if fmt == "xml":
        top = ET.Element(root)
        for obj in data if isinstance(data, list) else [data]:
            _xml_item(top, item, obj)
        body = b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(top, encoding="unicode").encode()
        return Response(body, status_code=status, media_type=XML_TYPE)
    return Response(orjson.dumps(data), status_code=status, media_type=JSON_TYPE)


def error(exc: Open311Error, fmt: str) -> Response:
    """Return an error in the spec's format."""
    return render([{"code": exc.code, "description": exc.description}], fmt, "errors", "error", exc.code)


def render_object(obj: dict[str, Any], fmt: str, root: str) -> Response:
    """Return one object as JSON, or as XML <root>…</root> (the service definition)."""
    if fmt == "xml":
        top = ET.Element(root)
        for k, v in obj.items():
            _xml_value(top, k, v)
        body = b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(top, encoding="unicode").encode()
        return Response(body, media_type=XML_TYPE)
    return Response(orjson.dumps(obj), media_type=JSON_TYPE)

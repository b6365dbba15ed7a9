"""Property tests: the NGSI-LD q parser, the plan file parser and the Open311 form parser never crash.

Whatever text they get, they either return a result or raise their documented error (which the API turns
into a 400 naming the problem), never anything else.
"""

from __future__ import annotations

import asyncio
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from citybrain.ngsi.errors import NgsiError
from citybrain.ngsi.ldcontext import resolve
from citybrain.ngsi.query import parse_q
from citybrain.open311.api import form
from citybrain.open311.spec import Open311Error
from citybrain.plans.loader import PlanFileError, parse_plan
from citybrain.rules.loader import RuleFileError, parse_rules

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Q_ALPHABET = st.sampled_from(list('abcxyz.[]"\'()=!<>~;|,:0123456789- _TZ') + ["==", "!=", ">=", "..", "urn:"])
q_text = st.lists(Q_ALPHABET, max_size=30).map("".join) | st.text(max_size=40)
plan_keys = st.sampled_from(["plan", "name", "area", "triggers", "tasks", "overrides", "reporting", "resources",
                             "end", "confirm", "manual", "level", "when", "department", "within", "task", "id",
                             "quantity", "above", "below", "category", "levels", "IV", "I", "x"])
leaf = st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12)
plan_data = st.recursive(leaf, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(plan_keys, kids, max_size=5),
                         max_leaves=25)


@FAST
@given(q_text)
def test_ngsi_q_parser_returns_a_predicate_or_an_ngsi_error(q: str) -> None:
    ctx = resolve(None)
    try:
        predicate = parse_q(q, ctx)
    except NgsiError as exc:
        assert exc.status == 400
        return
    assert callable(predicate)


# tags whose construction fails after the YAML parsed (hypothesis found the first one)
BAD_TAGS = ["a: !!value x", "plan: !!int abc", "plan:\n  when: !!timestamp 2020-13-45", "x: !!float 1e99999x"]


@FAST
@given(st.one_of(plan_data.map(lambda d: yaml.safe_dump(d, allow_unicode=True)), st.text(max_size=200)))
@example(BAD_TAGS[0])
@example(BAD_TAGS[1])
@example(BAD_TAGS[2])
def test_plan_parser_returns_a_plan_or_a_plan_file_error(text: str) -> None:
    try:
        parse_plan(text, "fuzz.yaml", departments={"transport", "emergency"})
    except PlanFileError as exc:
        assert exc.problems and all({"line", "field", "error"} <= set(p) for p in exc.problems)


@FAST
@given(st.one_of(plan_data.map(lambda d: yaml.safe_dump({"rules": [d]}, allow_unicode=True)), st.text(max_size=200)))
@example(BAD_TAGS[0])
@example(BAD_TAGS[1])
@example(BAD_TAGS[3])
def test_rule_parser_returns_rules_or_a_rule_file_error(text: str) -> None:
    try:
        parse_rules(text, "fuzz.yaml")
    except RuleFileError as exc:
        assert exc.problems and all({"line", "field", "error"} <= set(p) for p in exc.problems)


def _request(body: bytes, content_type: str) -> Request:
    sent = [False]

    async def receive() -> dict[str, Any]:
        if sent[0]:
            return {"type": "http.disconnect"}
        sent[0] = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/open311/v2/requests.json", "headers":
             [(b"content-type", content_type.encode())], "query_string": b""}
    return Request(scope, receive)


@FAST
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
       st.sampled_from(["application/x-www-form-urlencoded", "application/json", "text/plain"]))
def test_open311_form_parser_returns_text_fields_or_an_open311_error(body: bytes, content_type: str) -> None:
    try:
        fields = asyncio.run(form(_request(body, content_type)))
    except Open311Error as exc:
        assert exc.code == 400
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())

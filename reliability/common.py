"""Helpers shared by the scenarios: waiting for the node, MQTT counters, the graceful stop and check."""

from __future__ import annotations

import re
import time

import httpx

from reliability.check import Result, check, fill
from reliability.load import Acks
from reliability.services import Node


def wait_stored(node: Node, expected: int, timeout: float = 60.0, still_for: float = 2.0) -> None:
    """Wait until the node's history holds `expected` rows, or stops growing for `still_for` s."""
    end, last, still = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < end:
        try:
            rows = int(httpx.get(node.base + "/api/v1/stats", timeout=30).json()["history_rows"])
        except (httpx.HTTPError, KeyError, ValueError):
            still = time.monotonic()  # a slow or failed answer says nothing about progress
            time.sleep(0.2)
            continue
        if rows >= expected:
            return
        if rows != last:
            last, still = rows, time.monotonic()
        elif time.monotonic() - still > still_for:
            return
        time.sleep(0.2)


def wait_mqtt(node: Node, timeout: float = 30.0) -> None:
    """Wait until the node reports its MQTT client connected (subscriptions in place)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if re.search(r"^citybrain_mqtt_connected 1(\.0)?$", httpx.get(node.base + "/metrics", timeout=5).text, re.M):
                time.sleep(0.3)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("the node's MQTT client did not connect")


def finish(node: Node, result: Result, acks: Acks) -> Result:
    """Stop the node gracefully (exit code must be 0), then check the store."""
    code = node.stop()
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete, so -15 is a clean exit too
    if code not in (0, -15) or "Application shutdown complete" not in node.log_text():
        result.ok = False
        result.notes.append(f"no graceful stop (exit code {code})")
    fill(result, acks.by_entity, check(node.store, acks.by_entity))
    if result.ok:
        node.cleanup()
    return result


def mqtt_counts(node: Node) -> tuple[int, int]:
    """Return (received, stored + rejected) from the node's MQTT metrics."""
    try:
        text = httpx.get(node.base + "/metrics", timeout=10).text
    except httpx.HTTPError:
        return 0, 0
    values = {k: int(float(v)) for k, v in re.findall(r"^(citybrain_mqtt_\w+_total) ([0-9.e+]+)$", text, re.M)}
    done = values.get("citybrain_mqtt_stored_total", 0) + values.get("citybrain_mqtt_rejected_total", 0)
    return values.get("citybrain_mqtt_received_total", 0), done

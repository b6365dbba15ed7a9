"""Fixtures of the scale-out suite: one node of three real processes per test module.

A module may set `NODE_OPTIONS = {...}` (keyword arguments of `Node`: auth, lease_ttl, partitions, env, mqtt),
define `node_options(workdir) -> {...}` for options that need the working directory, and set `PROCESSES = n`
(default 3). Each module gets a fresh PostgreSQL schema, a fresh JetStream stream and subject prefix and its
own working directory; everything is removed afterwards. A failing test's report carries the tail of every
process's log.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from scaleout.node import MQTT_HOST, MQTT_PORT, NATS_URL, Node
from services import pg_schema_url, require_service

NODE_KEY = pytest.StashKey[Node]()


@pytest.fixture(scope="module")
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """Start the node's processes once for the module; stop them and delete its schema, stream and leases."""
    nats = urlsplit(NATS_URL)
    require_service("NATS JetStream", nats.hostname or "127.0.0.1", nats.port or 4222)
    options: dict[str, Any] = dict(getattr(request.module, "NODE_OPTIONS", {}))
    if options.get("mqtt"):
        require_service("Mosquitto MQTT broker", MQTT_HOST, MQTT_PORT)
    count = int(getattr(request.module, "PROCESSES", 3))
    workdir = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    make_options = getattr(request.module, "node_options", None)
    if make_options is not None:  # options that need the working directory (files the processes read)
        options.update(make_options(workdir))
    for store in pg_schema_url():  # a fresh schema, dropped when the loop ends
        n = Node(workdir, store, **options)
        request.node.stash[NODE_KEY] = n
        try:
            n.start(count)
            yield n
        finally:
            n.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Attach the processes' log tails (and which processes died) to a failing test's report."""
    report = yield
    if report.failed:
        module = item.getparent(pytest.Module)
        n = module.stash.get(NODE_KEY, None) if module is not None else None
        if n is not None:
            report.sections.append(("citybrain processes", n.logs()))
    return report

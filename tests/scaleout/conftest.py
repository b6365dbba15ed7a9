"""Fixtures of the scale-out suite: one node per test module and deployment.

Every scenario runs on both deployments a city brain has (ids `[3-pg-nats]` and `[1-sqlite]`):
- `3-pg-nats`: three real `citybrain serve` processes on one PostgreSQL schema and one NATS JetStream (in CI a
  missing service fails the test, elsewhere it is skipped: tests/services.py `require_service`);
- `1-sqlite`: one `citybrain serve` process on a SQLite file in the module's working directory with the
  in-process bus; it needs neither PostgreSQL nor NATS. `node.at(i)` and `node.rr` all reach the one process.
A module whose scenario cannot apply to one process says so with `DEPLOYMENTS = ("3-pg-nats",)` and a comment
why.

A module may set `NODE_OPTIONS = {...}` (keyword arguments of `Node`: auth, lease_ttl, partitions, env, mqtt),
define `node_options(workdir) -> {...}` for options that need the working directory, and set `PROCESSES = n`
(default 3, for the `3-pg-nats` deployment). Each module gets a fresh PostgreSQL schema, a fresh JetStream
stream and subject prefix (or a fresh SQLite file) and its own working directory per deployment; everything is
removed afterwards. A failing test's report carries the tail of every process's log.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from scaleout.node import MQTT_HOST, MQTT_PORT, NATS_URL, ONE_SQLITE, THREE_PG_NATS, Node
from services import pg_schema_url, require_service

NODE_KEY = pytest.StashKey[dict[str, Node]]()
DEPLOYMENTS = (THREE_PG_NATS, ONE_SQLITE)
MARKS = {THREE_PG_NATS: (pytest.mark.postgres, pytest.mark.nats), ONE_SQLITE: ()}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses `node` once per deployment its module allows (module attribute DEPLOYMENTS)."""
    if "node" not in metafunc.fixturenames:
        return
    wanted = tuple(getattr(metafunc.module, "DEPLOYMENTS", DEPLOYMENTS))
    unknown = set(wanted) - set(DEPLOYMENTS)
    assert not unknown, f"{metafunc.module.__name__}: unknown deployments {sorted(unknown)}"
    metafunc.parametrize("node", [pytest.param(d, id=d, marks=MARKS[d]) for d in wanted], indirect=True,
                         scope="module")


@pytest.fixture(scope="module")
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """Start the node's processes once for the module and deployment; stop them and delete its schema, stream
    and leases (or its SQLite file, with the working directory)."""
    deployment = str(getattr(request, "param", THREE_PG_NATS))
    options: dict[str, Any] = dict(getattr(request.module, "NODE_OPTIONS", {}))
    name = request.module.__name__.rsplit(".", 1)[-1]
    if deployment == THREE_PG_NATS:
        nats = urlsplit(NATS_URL)
        require_service("NATS JetStream", nats.hostname or "127.0.0.1", nats.port or 4222)
        if options.get("mqtt"):
            require_service("Mosquitto MQTT broker", MQTT_HOST, MQTT_PORT)
    else:
        assert not options.get("mqtt"), f"{name}: MQTT sessions across processes need the 3-pg-nats deployment"
    workdir = tmp_path_factory.mktemp(f"{name}-{deployment}")
    make_options = getattr(request.module, "node_options", None)
    if make_options is not None:  # options that need the working directory (files the processes read)
        options.update(make_options(workdir))
    if deployment == ONE_SQLITE:  # the SQLite file goes with the working directory
        yield from _run(request, deployment, Node(workdir, str(workdir / "citybrain.db"), bus="memory", **options), 1)
        return
    count = int(getattr(request.module, "PROCESSES", 3))
    for store in pg_schema_url():  # a fresh schema, dropped when the loop ends
        yield from _run(request, deployment, Node(workdir, store, **options), count)


def _run(request: pytest.FixtureRequest, deployment: str, n: Node, count: int) -> Iterator[Node]:
    """Start `count` processes of the node, yield it, close it (also when starting fails)."""
    module = request.node.getparent(pytest.Module) or request.node
    module.stash.setdefault(NODE_KEY, {})[deployment] = n
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
        nodes = module.stash.get(NODE_KEY, {}) if module is not None else {}
        callspec = getattr(item, "callspec", None)
        deployment = callspec.params.get("node") if callspec is not None else None
        n = nodes.get(str(deployment)) if deployment is not None else None
        if n is not None:
            report.sections.append((f"citybrain processes ({deployment})", n.logs()))
    return report

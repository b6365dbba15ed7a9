"""NGSI-LD tenants (NGSILD-Tenant header): each tenant is its own store, behind its own small runtime.

The default tenant is the node's runtime. Another tenant gets a runtime with the model, ingest and NGSI-LD
components on a store next to the main one, opened lazily on first use and closed when the node stops:

- SQLite: the file `<path>.<tenant>.db` beside the main file;
- PostgreSQL: the schema `cb_tenant_<tenant>` in the main store's database (same migrations, its own
  `entities`, `attrs`, `history`, `docs` … tables), created on the first write to the tenant. Every node
  using the same database sees the same tenants.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from citybrain.config import Settings
from citybrain.ngsi.errors import BadRequestData, ResourceNotFound

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain
    from citybrain.store import Store
    from citybrain.store.postgres import PostgresStore

TENANT_COMPONENTS = ["citybrain.model.commands", "citybrain.ingest.observations", "citybrain.ngsi"]
SCHEMA_PREFIX = "cb_tenant_"
TENANT_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
PG_MAX = 63 - len(SCHEMA_PREFIX)  # PostgreSQL names are at most 63 bytes
PG_TENANT_NAME = re.compile(rf"^[A-Za-z0-9_\-]{{1,{PG_MAX}}}$")
TENANT_READERS = 2  # reader connections of a PostgreSQL tenant store (the main store has its own pool)


def tenant_schema(tenant: str) -> str:
    """Return the PostgreSQL schema of a tenant; raise BadRequestData for a name a schema cannot carry."""
    if not PG_TENANT_NAME.match(tenant):
        raise BadRequestData(f"NGSILD-Tenant: {tenant!r} is not a valid tenant name on a PostgreSQL store "
                             f"([A-Za-z0-9_-], at most {PG_MAX} characters)")
    return SCHEMA_PREFIX + tenant


def tenant_store_url(main: str, tenant: str) -> str:
    """Return the store URL of a tenant, derived from the main store URL."""
    if not TENANT_NAME.match(tenant):
        raise BadRequestData(f"NGSILD-Tenant: {tenant!r} is not a valid tenant name ([A-Za-z0-9_-], ≤ 64)")
    if main.startswith(("postgresql://", "postgres://")):
        from citybrain.store.postgres import schema_url

        return schema_url(main, tenant_schema(tenant))
    if main in (":memory:", ""):
        return ":memory:"
    path = Path(main[len("sqlite:///"):] if main.startswith("sqlite:///") else main)
    return str(path.with_name(f"{path.stem}.{tenant}{path.suffix or '.db'}"))


def tenant_bus(settings: Settings, tenant: str) -> dict[str, Any]:
    """Return the bus settings of a tenant's runtime on a PostgreSQL store.

    On the node's NATS server the tenant gets a stream and a subject prefix of its own, so its runtimes on
    every process of the node share one bus: entity events keep each process's directory and subscriptions
    current and the work-sharing notifier notifies each change once. The prefix's first token differs from
    the node's, so the tenant's stream does not overlap the node's. On an in-process bus (one process)
    the tenant has its own in-process bus."""
    if settings.bus in ("memory", "", "memory://"):
        return {"bus": "memory"}
    return {"bus": settings.bus, "bus_stream": f"{settings.bus_stream}_T_{tenant}",
            "bus_prefix": f"{settings.bus_prefix}_t_{tenant}", "bus_replicas": settings.bus_replicas}


def _has_file(url: str) -> bool:
    return url != ":memory:" and Path(url).exists()


class Tenants:
    """Opens tenant runtimes on demand and keeps them until the node stops."""

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self.open: dict[str, CityBrain] = {}
        self.pending: dict[str, asyncio.Task[CityBrain]] = {}
        rt.on_stop(self.close)

    def postgres(self) -> PostgresStore | None:
        """Return the main store when it is PostgreSQL (then every tenant is a schema of its database)."""
        from citybrain.store.postgres import PostgresStore

        store = self.rt.store
        return store if isinstance(store, PostgresStore) else None

    def url(self, name: str) -> str:
        """Return the store URL of a tenant (BadRequestData for a name its store cannot carry)."""
        main = self.postgres()
        return tenant_store_url(main.url if main is not None else self.rt.settings.store, name)

    async def exists(self, name: str) -> bool:
        """Tell whether a tenant has been opened or has a store (a SQLite file, a PostgreSQL schema)."""
        if name in self.open:
            return True
        url = self.url(name)
        main = self.postgres()
        if main is not None:
            return await main.schema_exists(tenant_schema(name))
        return _has_file(url)

    async def ensure(self, name: str, create: bool) -> CityBrain:
        """Return the runtime of a tenant, opening it; an unknown tenant is created only when `create`."""
        found = self.open.get(name)
        if found is not None:
            return found
        self.url(name)  # a bad name is BadRequestData before anything else
        if not create and not await self.exists(name):
            raise ResourceNotFound(f"tenant {name!r} does not exist")
        task = self.pending.get(name)
        if task is None:
            task = asyncio.ensure_future(self._start(name))
            self.pending[name] = task
        try:
            return await task
        finally:
            self.pending.pop(name, None)

    async def _start(self, name: str) -> CityBrain:
        from citybrain.runtime import CityBrain

        settings = self.rt.settings
        url = self.url(name)
        main = self.postgres()
        store: Store | None = None
        if main is not None:
            from citybrain.store.postgres import PostgresStore

            await main.create_schema(tenant_schema(name))
            store = PostgresStore(url, readers=TENANT_READERS)
        bus = tenant_bus(settings, name) if main is not None else {"bus": "memory"}
        sub = CityBrain(Settings(store=url, node_id=f"{settings.node_id}:{name}", role=settings.role,
                                 max_body_bytes=settings.max_body_bytes, process_id=settings.process_id,
                                 lease_ttl=settings.lease_ttl, jwt_secret=self.rt.node_secret,
                                 environ=dict(settings.environ), **bus),
                        clock=self.rt.clock, store=store, components=TENANT_COMPONENTS)
        sub.ports.tenant = name
        try:
            await sub.start()
        except BaseException:
            await sub.stop()
            raise
        self.open[name] = sub
        return sub

    async def close(self) -> None:
        """Stop every tenant runtime."""
        for sub in list(self.open.values()):
            await sub.stop()
        self.open.clear()

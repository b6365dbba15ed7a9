"""NGSI-LD tenants (NGSILD-Tenant header): each tenant is its own store, behind its own small runtime.

The default tenant is the node's runtime. Another tenant gets a runtime with the model, ingest and NGSI-LD
components on a store next to the main one (`<path>.<tenant>.db` for SQLite; PostgreSQL tenants are not
supported yet), opened lazily on first use and closed when the node stops.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from citybrain.config import Settings
from citybrain.ngsi.errors import OperationNotSupported, ResourceNotFound

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

TENANT_COMPONENTS = ["citybrain.model.commands", "citybrain.ingest.observations", "citybrain.ngsi"]


def tenant_store_url(main: str, tenant: str) -> str:
    """Return the store URL of a tenant, derived from the main store URL."""
    if main.startswith(("postgresql://", "postgres://")):
        raise OperationNotSupported("NGSILD-Tenant: tenants on a PostgreSQL store are not supported yet")
    if main in (":memory:", ""):
        return ":memory:"
    path = Path(main[len("sqlite:///"):] if main.startswith("sqlite:///") else main)
    return str(path.with_name(f"{path.stem}.{tenant}{path.suffix or '.db'}"))


class Tenants:
    """Opens tenant runtimes on demand and keeps them until the node stops."""

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self.open: dict[str, CityBrain] = {}
        self.pending: dict[str, asyncio.Task[CityBrain]] = {}
        rt.on_stop(self.close)

    def exists(self, name: str) -> bool:
        """Tell whether a tenant has been opened or has a store file."""
        if name in self.open:
            return True
        url = tenant_store_url(self.rt.settings.store, name)
        return not url.startswith("postgres") and url != ":memory:" and Path(url).exists()

    async def ensure(self, name: str, create: bool) -> CityBrain:
        """Return the runtime of a tenant, opening it; an unknown tenant is created only when `create`."""
        found = self.open.get(name)
        if found is not None:
            return found
        if not create and not self.exists(name):
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

        main = self.rt.settings
        settings = Settings(store=tenant_store_url(main.store, name), bus="memory", node_id=f"{main.node_id}:{name}",
                            role=main.role, max_body_bytes=main.max_body_bytes)
        sub = CityBrain(settings, clock=self.rt.clock, components=TENANT_COMPONENTS)
        sub.services["ngsi_tenant_name"] = name
        await sub.start()
        self.open[name] = sub
        return sub

    async def close(self) -> None:
        """Stop every tenant runtime."""
        for sub in list(self.open.values()):
            await sub.stop()
        self.open.clear()

"""Trust: identities and roles, enforcement on every path, the data catalog and authorised data sharing."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


async def setup(rt: CityBrain) -> None:
    """Register identity, catalog and grant commands; start the auth service (bootstrapping an admin)."""
    from citybrain.trust import auth, catalog, grants

    catalog.register(rt)
    rt.ports.catalog = catalog.CatalogService(rt)
    grants.register(rt)
    await auth.setup(rt)

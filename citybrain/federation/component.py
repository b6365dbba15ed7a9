"""City brain and community mini-brains: federation over NATS JetStream that survives a broken link.

``rt.ports.federation`` sends typed messages up (community → city) and down (city → communities)
through a durable outbox, applies received ones exactly once and in order per sender, and lists nodes
with their link state and backlog. See docs/federation.md.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from citybrain.federation.directives import setup_directives
from citybrain.federation.messages import DOWN_KINDS, UP_KINDS, FedMessage
from citybrain.federation.reports import setup_reports
from citybrain.federation.scope import guard_commands
from citybrain.federation.service import Federation

if TYPE_CHECKING:
    from fastapi import FastAPI

    from citybrain.runtime import CityBrain

__all__ = ["DOWN_KINDS", "UP_KINDS", "FedMessage", "Federation", "mount", "setup"]


async def _guard_when_started(rt: CityBrain) -> None:
    """Confine commands registered by components set up after this one, once the runtime has started."""
    for _ in range(100000):  # the runtime sets `started` only after every setup ran
        if rt.started:
            break
        await asyncio.sleep(0.01)
    guard_commands(rt)


async def setup(rt: CityBrain) -> None:
    """Create the federation service, register its commands and handlers, and start its loops."""
    fed = Federation(rt)
    rt.ports.federation = fed
    setup_directives(rt, fed)
    setup_reports(rt, fed)
    if fed.role == "community":
        guard_commands(rt)
        rt.spawn(_guard_when_started(rt), name="federation-area-guard")
        await rt.store.apply([fed.up_op("node.hello", {"area": rt.settings.area, "node": rt.node_id},
                                        rt.context("federation"))])
    await fed.start()


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Mount the federation API (and, on a community node, the area scope)."""
    from citybrain.federation.api import mount as mount_api

    mount_api(app, rt)

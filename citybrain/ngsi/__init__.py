"""NGSI-LD context API (ETSI GS CIM 009) at /ngsi-ld/v1: a view onto the city model, not a second database."""

from __future__ import annotations

from typing import TYPE_CHECKING

from citybrain.ports import Ports

if TYPE_CHECKING:
    from fastapi import FastAPI

    from citybrain.runtime import CityBrain


async def setup(rt: CityBrain) -> None:
    """Register the NGSI-LD commands, the tenants service and the subscription notifier."""
    from citybrain.ngsi import commands
    from citybrain.ngsi.notify import Notifier
    from citybrain.ngsi.subscriptions import follow
    from citybrain.ngsi.tenants import Tenants

    commands.register(rt)
    if not rt.ports.has(Ports.tenant):  # a tenant runtime serves no tenants of its own
        rt.ports.ngsi_tenants = Tenants(rt)
    notifier = Notifier(rt)
    rt.ports.ngsi_notifier = notifier
    await notifier.start()
    await follow(rt, notifier)  # the live set of subscriptions, kept current from every process's commands


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Mount the NGSI-LD routes and their ProblemDetails error handling."""
    from citybrain.ngsi.api import mount as _mount

    _mount(app, rt)

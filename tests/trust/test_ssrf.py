"""Finding 2 of issue #20: NGSI-LD notifications reach no link-local, metadata, private or loopback address
unless the operator admits it; names are checked when resolved (DNS rebinding); redirects are not followed."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from trustcity import T1, City

from citybrain.config import Settings
from citybrain.ngsi import egress
from citybrain.ngsi.egress import LOOPBACK, EgressPolicy

N = "/ngsi-ld/v1"
SUB = {"type": "Subscription", "entities": [{"type": "TrafficFlowObserved"}], "watchedAttributes": ["intensity"]}
REFUSED = ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/n", "http://100.100.100.200/latest",
           "http://[fd00:ec2::254]/", "http://[::ffff:169.254.169.254]/", "http://10.0.0.5/n", "http://172.16.3.4/n",
           "http://192.168.1.1/n", "http://127.0.0.1:9/n", "http://[::1]:9/n", "http://[fd12::1]/n",
           "http://0.0.0.0:9/n", "http://localhost:9/n"]


def sub(uri: str, sid: str = "urn:ngsi-ld:Subscription:s") -> dict[str, Any]:
    return {**SUB, "id": sid, "notification": {"endpoint": {"uri": uri}}}


@pytest.mark.parametrize("uri", REFUSED)
async def test_refused_endpoints(city: City, uri: str) -> None:
    r = await city.client.post(f"{N}/subscriptions", json=sub(uri), headers=city.auth("city_operator"))
    assert r.status_code == 400, (uri, r.status_code, r.text)
    assert "notification endpoint" in r.text


async def test_public_endpoint_accepted_and_update_checked(city: City) -> None:
    h = city.auth("city_operator")
    r = await city.client.post(f"{N}/subscriptions", json=sub("http://93.184.216.34/n"), headers=h)
    assert r.status_code == 201, r.text
    r = await city.client.patch(f"{N}/subscriptions/urn:ngsi-ld:Subscription:s",
                                json={"notification": {"endpoint": {"uri": "http://169.254.169.254/"}}}, headers=h)
    assert r.status_code == 400, r.text


def test_policy_allow_list() -> None:
    on = EgressPolicy.from_settings(Settings(auth="on"))
    off = EgressPolicy.from_settings(Settings(auth="off"))
    ip = ipaddress.ip_address
    assert on.refusal(ip("127.0.0.1")) and off.refusal(ip("127.0.0.1")) is None and off.refusal(ip("::1")) is None
    assert off.refusal(ip("10.1.2.3")) and off.refusal(ip("169.254.169.254"))
    assert EgressPolicy.from_settings(Settings(auth="off", notify_allow="none")).refusal(ip("127.0.0.1"))
    lan = EgressPolicy.from_settings(Settings(auth="on", notify_allow="10.20.0.0/16, fd12::/16"))
    assert lan.refusal(ip("10.20.5.5")) is None and lan.refusal(ip("fd12::1")) is None
    assert lan.refusal(ip("10.21.0.1")) and lan.refusal(ip("127.0.0.1"))
    everything = EgressPolicy.from_settings(Settings(auth="on", notify_allow="0.0.0.0/0,::/0"))
    for always in ("169.254.169.254", "169.254.1.1", "fe80::1", "100.100.100.200", "fd00:ec2::254", "224.0.0.1"):
        assert everything.refusal(ip(always)), always
    assert on.refusal(ip("93.184.216.34")) is None
    with pytest.raises(ValueError):
        EgressPolicy.from_settings(Settings(notify_allow="not-a-net"))


class Sink:
    """A local HTTP endpoint counting what reaches it; /redirect answers 302 to /target."""

    def __init__(self) -> None:
        self.hits: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        if request.path == "/redirect":
            raise web.HTTPFound("/target")
        return web.Response(status=204)


@pytest.fixture
async def sink() -> AsyncIterator[tuple[Sink, int]]:
    s = Sink()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", s.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield s, port
    await runner.cleanup()


async def _notify_once(city: City, sid: str) -> dict[str, Any]:
    await city.rt.execute("entity.update", {"id": T1, "attrs": {"intensity": {"type": "Property", "value": 77}}},
                          city.rt.context("admin:test"))
    w = city.rt.ports.ngsi_notifier.watches[sid]
    for _ in range(200):
        if w.status.get("timesSent") or w.status.get("timesFailed"):
            break
        await asyncio.sleep(0.02)
    return w.status


async def test_dns_rebinding_is_refused_at_notify_time(city: City, sink: tuple[Sink, int],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """rebind.test resolves to a public address when subscribed, then to 127.0.0.1 (where the sink listens)."""
    received, port = sink
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    answers = ["93.184.216.34"]

    async def lookup(host: str, port: int, family: int = 0) -> list[dict[str, Any]]:
        assert host == "rebind.test"
        return [{"hostname": host, "host": answers[0], "port": port, "family": 2, "proto": 6, "flags": 0}]

    monkeypatch.setattr(egress, "lookup", lookup)
    notifier = city.rt.ports.ngsi_notifier
    notifier.retries = 0
    r = await city.client.post(f"{N}/subscriptions", json=sub(f"http://rebind.test:{port}/n", "urn:ngsi-ld:Subscription:r"),
                               headers=city.auth("city_operator"))
    assert r.status_code == 201, r.text
    answers[0] = "127.0.0.1"
    status = await _notify_once(city, "urn:ngsi-ld:Subscription:r")
    assert status.get("timesFailed") == 1 and "refused" in status.get("lastError", ""), status
    assert received.hits == []


async def test_connection_resolver_checks_every_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """The resolver the notifier connects through refuses a name if any of its addresses is refused."""
    async def lookup(host: str, port: int, family: int = 0) -> list[dict[str, Any]]:
        return [{"hostname": host, "host": a, "port": port, "family": 2, "proto": 6, "flags": 0}
                for a in ("93.184.216.34", "169.254.169.254")]

    monkeypatch.setattr(egress, "lookup", lookup)
    resolver = egress.checked_resolver(EgressPolicy(LOOPBACK))
    with pytest.raises(egress.EgressRefused):
        await resolver.resolve("two-faced.test", 80)


async def test_redirects_are_not_followed(city: City, sink: tuple[Sink, int],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    received, port = sink
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    notifier = city.rt.ports.ngsi_notifier
    notifier.retries = 0
    notifier.egress = EgressPolicy(LOOPBACK)  # as an operator admitting loopback with notify_allow
    r = await city.client.post(f"{N}/subscriptions", json=sub(f"http://127.0.0.1:{port}/redirect",
                                                              "urn:ngsi-ld:Subscription:x"),
                               headers=city.auth("city_operator"))
    assert r.status_code == 201, r.text
    status = await _notify_once(city, "urn:ngsi-ld:Subscription:x")
    assert status.get("timesFailed") == 1 and status.get("lastError") == "HTTP 302", status
    assert received.hits == ["/redirect"]

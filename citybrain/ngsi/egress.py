"""Where a node may send notifications: the SSRF policy for NGSI-LD subscription endpoints.

A subscriber names the URL the node will POST to, so without a policy anyone allowed to subscribe could
make the node reach the cloud metadata service, its own admin ports or the private network. The policy:

* always refused: link-local addresses (169.254.0.0/16, fe80::/10), the cloud metadata addresses
  (169.254.169.254, fd00:ec2::254, 100.100.100.200), unspecified, multicast, broadcast and reserved
  addresses; no setting admits them;
* refused unless the `notify_allow` setting admits them: loopback (127.0.0.0/8, ::1), private
  (10/8, 172.16/12, 192.168/16, fc00::/7) and every other non-global address (100.64/10 …);
* everything else (global unicast) is admitted.

`notify_allow` is a comma-separated list of networks (`10.20.0.0/16,127.0.0.1/32`); empty (the default)
admits loopback when auth is off (the local demo and the ETSI conformance run notify 127.0.0.1) and
nothing when auth is on; `none` admits nothing.

A host name is resolved and every address it resolves to must be admitted: when a subscription is made
or changed (a name that does not resolve yet is accepted), before each notification, and again when the
notifier's HTTP client connects (`CheckedResolver`), so a name that re-binds to a refused address after
the check (DNS rebinding) reaches nothing. Notifications follow no redirects.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from citybrain.config import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA: frozenset[Address] = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Huawei Cloud
    "fd00:ec2::254",  # AWS over IPv6
    "100.100.100.200",  # Alibaba Cloud
))
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressRefused(OSError):
    """A notification target the policy refuses (an OSError, so senders treat it as a failed delivery)."""


def _plain(addr: Address) -> Address:
    """Return the IPv4 address an IPv4-mapped or NAT64 IPv6 address stands for, else the address."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr in _NAT64:
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr


class EgressPolicy:
    """Decides whether the node may connect to an address for a notification."""

    def __init__(self, allow: Iterable[Network] = ()) -> None:
        self.allow: tuple[Network, ...] = tuple(allow)

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressPolicy:
        """Build the policy of a node: `notify_allow`, or loopback only with auth off."""
        raw = (getattr(settings, "notify_allow", "") or "").strip()
        if not raw:
            return cls(LOOPBACK if settings.auth != "on" else ())
        if raw.lower() == "none":
            return cls(())
        nets = []
        for item in raw.split(","):
            if item.strip():
                try:
                    nets.append(ipaddress.ip_network(item.strip(), strict=False))
                except ValueError:
                    raise ValueError(f"notify_allow: {item.strip()!r} is not a network such as 10.0.0.0/8") from None
        return cls(nets)

    def refusal(self, addr: Address) -> str | None:
        """Return why `addr` is refused, or None if the node may connect to it."""
        ip = _plain(addr)
        if ip in METADATA or addr in METADATA:
            return "a cloud metadata address"
        if ip.is_link_local:
            return "a link-local address"
        if ip.is_unspecified or ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
            return "not a unicast address"
        if ip.is_reserved and not ip.is_loopback:  # ::1 lies in IPv6's reserved ::/8
            return "a reserved address"
        if ip.is_global:
            return None
        if any(ip.version == net.version and ip in net for net in self.allow):
            return None
        kind = "a loopback" if ip.is_loopback else "a private"
        return f"{kind} address (admit it with the notify_allow setting)"

    def check_address(self, host: str, addr: str) -> None:
        """Raise EgressRefused unless the node may connect to `addr` (which `host` resolved to)."""
        why = self.refusal(ipaddress.ip_address(addr.split("%", 1)[0]))
        if why is not None:
            shown = addr if host == addr else f"{host} ({addr})"
            raise EgressRefused(f"notification endpoint {shown} is {why}")

    async def check_uri(self, uri: str, *, unresolved_ok: bool = True) -> None:
        """Raise EgressRefused unless every address `uri`'s host resolves to is admitted.

        A name that does not resolve passes if `unresolved_ok` (the connection would fail anyway, and is
        checked again when it is made); otherwise it is refused."""
        host = urlsplit(uri).hostname
        if not host:
            raise EgressRefused(f"notification endpoint {uri!r} names no host")
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            pass
        else:
            self.check_address(host, host)
            return
        try:
            addrs = await lookup(host, urlsplit(uri).port or 0)
        except OSError:
            if unresolved_ok:
                return
            raise EgressRefused(f"notification endpoint {host} does not resolve") from None
        for info in addrs:
            self.check_address(host, info["host"])


async def lookup(host: str, port: int, family: int = socket.AF_UNSPEC) -> list[dict[str, Any]]:
    """Resolve `host` as aiohttp's resolvers do: a list of ResolveResult dicts (tests replace this)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family,
                                                         flags=socket.AI_ADDRCONFIG)
    out = []
    for fam, _, proto, _, sockaddr in infos:
        if fam not in (socket.AF_INET, socket.AF_INET6):
            continue
        out.append({"hostname": host, "host": str(sockaddr[0]), "port": int(sockaddr[1]), "family": fam,
                    "proto": proto, "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV})
    if not out:
        raise OSError(f"{host} resolves to no address")
    return out


def checked_resolver(policy: EgressPolicy) -> Any:
    """Return an aiohttp resolver that refuses a host if any address it resolves to is refused."""
    from aiohttp.abc import AbstractResolver

    class CheckedResolver(AbstractResolver):
        async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> Any:
            found = await lookup(host, port, family)
            for info in found:
                policy.check_address(host, info["host"])
            return found

        async def close(self) -> None:
            return None

    return CheckedResolver()

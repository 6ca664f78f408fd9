"""Client addresses: parsing, networks, and ``X-Forwarded-For`` behind trusted proxies only."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from functools import lru_cache

from prism_mcp.errors import InvalidInputError
from prism_mcp.runtime import Runtime

__all__ = ["Address", "Network", "parse_address", "parse_network", "resolve_client", "to_networks"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str) -> Address | None:
    """The address in ``text`` (IPv4-mapped IPv6 becomes IPv4), or ``None`` when it is not one."""
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_network(text: str, field: str = "ip_address") -> Network:
    """An address or CIDR range as a network; :class:`InvalidInputError` naming ``field`` otherwise."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as exc:
        raise InvalidInputError(
            field, f"expected an IPv4 or IPv6 address or a CIDR range such as 192.168.1.0/24 (got {text[:60]!r})"
        ) from exc
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        mapped = network.network_address.ipv4_mapped
        return ipaddress.ip_network(f"{mapped}/{max(0, network.prefixlen - 96)}", strict=False)
    return network


@lru_cache(maxsize=64)
def to_networks(items: tuple[str, ...]) -> tuple[Network, ...]:
    """Parse a settings list once (settings are validated at start-up, so every item parses)."""
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def contains(networks: Iterable[Network], address: Address) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def resolve_client(runtime: Runtime, peer_ip: str, headers: Mapping[str, str]) -> str:
    """The client address: the socket peer, or, when the peer is a trusted proxy, the rightmost untrusted hop.

    ``X-Forwarded-For`` is read right to left because each proxy appends the address it saw: only the hops
    added by proxies PRISM trusts are believable, and the first hop that is not a trusted proxy is the client.
    A malformed hop ends the walk at the last address a trusted proxy vouched for.
    """
    trusted = to_networks(tuple(runtime.settings.trusted_proxies))
    peer = parse_address(peer_ip)
    if not trusted or peer is None or not contains(trusted, peer):
        return str(peer) if peer is not None else peer_ip
    forwarded = headers.get("x-forwarded-for", "")
    client = peer
    for hop in reversed([part for part in forwarded.split(",") if part.strip()]):
        address = parse_address(hop)
        if address is None:
            break
        client = address
        if not contains(trusted, address):
            break
    return str(client)

"""Which addresses a receiver may be at: public ones only, unless a network is allowed by
WEBHOOK_ALLOWED_NETWORKS. Loopback, private, link-local (the clouds' metadata service,
169.254.169.254, is one), reserved, multicast and unspecified addresses would let a
configuration reach into the server's own network."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressRefused(Exception):
    """The receiver's host resolves to an address it may not be at (the message names it)."""


def networks(allowed: list[str]) -> list[Network]:
    return [ipaddress.ip_network(network, strict=False) for network in allowed]


def is_internal(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or not address.is_global
    )


async def check(url: str, allowed: list[Network]) -> None:
    """Resolve `url`'s host; refuse it when any of its addresses is internal and not allowed."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise AddressRefused(f"cannot resolve {host}: {error.strerror}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if is_internal(address) and not any(address in network for network in allowed):
            raise AddressRefused(
                f"{host} resolves to {address}, an internal address (allow its network with "
                "WEBHOOK_ALLOWED_NETWORKS)"
            )

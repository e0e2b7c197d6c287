"""Which addresses a receiver may be at, and the one HTTP client that connects only to those.

A receiver must be at public addresses only, unless its network is allowed by
WEBHOOK_ALLOWED_NETWORKS. Loopback, private, link-local (the clouds' metadata service,
169.254.169.254, is one), reserved, multicast and unspecified addresses would let a
configuration reach into the server's own network.

Checking a name and then letting the HTTP client resolve it again would not hold: a hostile
DNS server can answer a public address to the check and 127.0.0.1 to the connection (DNS
rebinding). So `client()` resolves the receiver's host once, when a connection is opened,
refuses it if any of its addresses is internal and not allowed, and connects to those same
addresses: nothing resolves the name a second time. The URL's host is still the request's
`Host` and, for https, the TLS server name (SNI) the certificate is verified against, since
only the socket's destination is taken from the check. Resolving and connecting together are
bounded by the client's connect timeout (the attempt's). A pooled connection is reused only
for its own host, so it goes on to the address checked when it was opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# The host's addresses, for a host and port (a seam: tests answer as a rebinding DNS would).
Resolver = Callable[[str, int], Awaitable[list[Address]]]

USER_AGENT = "booking-api-webhooks/1"


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


async def resolve(host: str, port: int) -> list[Address]:
    """The host's addresses, by the system's resolver (without blocking the event loop)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise AddressRefused(f"cannot resolve {host}: {error.strerror}") from None
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


async def checked(
    host: str, port: int, allowed: list[Network], resolver: Resolver = resolve
) -> list[Address]:
    """`host`'s addresses, resolved once; refused when any of them is internal and not
    allowed (a name with one bad address among good ones is refused whole)."""
    found = await resolver(host, port)
    if not found:
        raise AddressRefused(f"cannot resolve {host}: no address")
    for address in found:
        if is_internal(address) and not any(address in network for network in allowed):
            raise AddressRefused(
                f"{host} resolves to {address}, an internal address (allow its network with "
                "WEBHOOK_ALLOWED_NETWORKS)"
            )
    return found


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to the addresses it has just checked."""

    def __init__(self, allowed: list[Network], resolver: Resolver) -> None:
        self.allowed = allowed
        self.resolver = resolver
        self.sockets = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                found = await checked(host, port, self.allowed, self.resolver)
                options = (port, timeout, local_address, socket_options)
                for address in found[:-1]:  # each one checked; the next if one does not answer
                    with contextlib.suppress(httpcore.ConnectError):
                        return await self.sockets.connect_tcp(str(address), *options)
                return await self.sockets.connect_tcp(str(found[-1]), *options)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"{host}: no connection within {timeout} s") from None

    async def sleep(self, seconds: float) -> None:
        await self.sockets.sleep(seconds)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport on a connection pool that opens its connections through
    `_CheckedBackend`. (httpx 0.28 takes no network backend, encode/httpx#3180, so the pool
    it built is replaced; every method of the transport only goes through `_pool`.)"""

    def __init__(self, backend: _CheckedBackend, verify: ssl.SSLContext | bool) -> None:
        super().__init__(verify=verify, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=100,  # httpx's default limits
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=backend,
        )


def client(
    allowed: list[Network],
    timeout: float | None,
    *,
    resolver: Resolver = resolve,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncClient:
    """The HTTP client of every call to a receiver (deliveries and before-hooks): connects only
    to checked addresses, follows no redirect, ignores proxy variables, `timeout` per phase.
    `resolver` and `verify` (the CA to trust) are the tests' seams."""
    return httpx.AsyncClient(
        transport=_CheckedTransport(_CheckedBackend(allowed, resolver), verify),
        follow_redirects=False,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
    )

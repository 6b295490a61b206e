"""Which addresses the platform may connect to on a tenant's behalf: public ones only.

A tenant gives us names to call (a URL to fetch for knowledge, a provider base URL for
their own key). A name that resolves to a private or local address (127.0.0.1, 10.x,
169.254.169.254 for cloud metadata...) would turn the platform into the tenant's way into
our network, so it is refused, unless PARLEY_ALLOW_PRIVATE_BASE_URLS is on (development).

The check belongs where the socket is opened, on the very addresses it connects to:
checking a name and then letting a client resolve it again would let a DNS server answer
"public" to the check and "127.0.0.1" to the connection (DNS rebinding). Both ways out
do that: `urlfetch` connects to the addresses `public_addresses` returned, and the SDK
clients of tenant endpoints resolve through `PublicOnlyResolver`, whose answer aiohttp
connects to without asking again.
"""

from __future__ import annotations

import ipaddress
import socket

import aiohttp


class AddressRefused(OSError):
    """The name cannot be connected to; the message says why, in a sentence for the user."""


def is_public(address: str) -> bool:
    return ipaddress.ip_address(address).is_global


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (AddressRefused when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise AddressRefused(f"The host {host} could not be resolved.") from error
    return [info[4][0] for info in infos]


def public_addresses(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to; AddressRefused unless every one is public."""
    addresses = resolve(host, port)
    refuse_private(host, addresses)
    return addresses


def refuse_private(host: str, addresses: list[str]) -> None:
    if not all(is_public(address) for address in addresses):
        raise AddressRefused(f"URLs on private or local addresses are not allowed ({host}).")


class PublicOnlyResolver(aiohttp.ThreadedResolver):
    """aiohttp's resolver, refusing names with any private or local address.

    aiohttp connects to the addresses its resolver returns (and caches them as they are),
    so what was checked is what is connected to. Literal IP addresses skip resolvers;
    they are checked when the URL is saved (`agents.services.check_base_url`).
    """

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        results = await super().resolve(host, port, family)
        refuse_private(host, [result["host"] for result in results])
        return results

"""Fetching a URL a tenant gave us (a knowledge source), without reaching our own network.

A URL is a request to make from inside the platform, so a name that resolves to a
private or local address (127.0.0.1, 10.x, 169.254.169.254 for cloud metadata...) is
refused, unless PARLEY_ALLOW_PRIVATE_BASE_URLS is on (development). The check happens
where the socket is opened, on the very addresses it connects to: the name is resolved
once per connection, every address checked, and the socket goes to one of those
addresses. Checking a name and then letting the HTTP client resolve it again would let a
DNS server answer "public" to the check and "127.0.0.1" to the connection (DNS
rebinding). Redirects open their own connections, so each hop is checked the same way.

Connections are direct: proxies named in the environment are not used, since a proxy
would resolve the name again, out of reach of the check.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


class FetchRefused(Exception):
    """The URL cannot be fetched; the message says why, in a sentence for the user."""


@dataclass(frozen=True)
class Fetched:
    body: bytes  # at most limit + 1 bytes: more than `limit` means the page is too big
    content_type: str
    url: str  # after redirects


def checked_addresses(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, all of them public (any, when private ones are allowed)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise FetchRefused(f"The host {host} could not be resolved.") from error
    addresses = [info[4][0] for info in infos]
    if not settings.PARLEY_ALLOW_PRIVATE_BASE_URLS and not all(
        ipaddress.ip_address(address).is_global for address in addresses
    ):
        raise FetchRefused("URLs on private or local addresses are not fetched.")
    return addresses


def _connect(address, timeout, source_address=None):
    """`socket.create_connection`, to a checked address of the host, never resolving it again."""
    host, port = address
    failure: OSError | None = None
    for checked in checked_addresses(host, port):
        try:
            return socket.create_connection((checked, port), timeout, source_address)
        except OSError as error:
            failure = error
    raise failure or OSError(f"no address for {host}")


class _CheckedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _connect


class _CheckedHTTPSConnection(http.client.HTTPSConnection):
    """TLS as usual: the certificate is checked against the URL's name, not the address."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _connect


class _CheckedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_CheckedHTTPConnection, req)


class _CheckedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_CheckedHTTPSConnection, req, context=self._context)


class _HttpRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = 5

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_scheme(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def check_scheme(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchRefused("Only http(s) URLs can be fetched.")


def fetch(url: str, *, limit: int, timeout: float) -> Fetched:
    """GET `url` (redirects followed, each hop checked); reads at most `limit` + 1 bytes."""
    check_scheme(url)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        _CheckedHTTPHandler,
        _CheckedHTTPSHandler,
        _HttpRedirects,
    )
    request = urllib.request.Request(url, headers={"User-Agent": "Parley knowledge"})  # noqa: S310 - http(s) only, checked
    try:
        with opener.open(request, timeout=timeout) as response:
            return Fetched(
                body=response.read(limit + 1),
                content_type=response.headers.get("Content-Type", ""),
                url=response.geturl(),
            )
    except urllib.error.HTTPError as error:
        raise FetchRefused(f"The server answered HTTP {error.code}.") from error
    except urllib.error.URLError as error:
        raise FetchRefused(f"The URL could not be fetched ({error.reason}).") from error
    except (OSError, ValueError, http.client.HTTPException) as error:
        raise FetchRefused(f"The URL could not be fetched ({error}).") from error

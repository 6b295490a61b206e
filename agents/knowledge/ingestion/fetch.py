"""Fetching a URL a tenant gave us (a knowledge source), without reaching our own network.

Each connection, the first and every redirect's, resolves the name once, checks every
address (agents/addresses.py) and connects to one of them: the name is never resolved
again between the check and the connection. Connections are direct: proxies named in the
environment are not used, since a proxy would resolve the name again, out of reach of the
check.
"""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import PurePath
from urllib.parse import urlsplit

from django.conf import settings

from agents.addresses import AddressRefused, public_addresses
from agents.knowledge.ingestion.extract import UnreadableDocument, format_of, title_from
from agents.models import KnowledgeSource


class FetchRefused(Exception):
    """The URL cannot be fetched; the message says why, in a sentence for the user."""


@dataclass(frozen=True)
class Fetched:
    body: bytes  # at most limit + 1 bytes: more than `limit` means the page is too big
    content_type: str
    url: str  # after redirects


def _connect(address, timeout, source_address=None):
    """`socket.create_connection`, to a checked address of the host, never resolving it again."""
    if settings.PARLEY_ALLOW_PRIVATE_BASE_URLS:
        return socket.create_connection(address, timeout, source_address)
    host, port = address
    failure: OSError | None = None
    for checked in public_addresses(host, port):
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
        if isinstance(error.reason, AddressRefused):
            raise FetchRefused(str(error.reason)) from error
        raise FetchRefused(f"The URL could not be fetched ({error.reason}).") from error
    except (OSError, ValueError, http.client.HTTPException) as error:
        raise FetchRefused(f"The URL could not be fetched ({error}).") from error


def fetch_source(source: KnowledgeSource) -> None:
    """Download a URL source (size-limited, every redirect checked) into its stored bytes."""
    if not settings.PARLEY_KNOWLEDGE_FETCH_URLS:
        raise UnreadableDocument(
            "Fetching URLs is turned off on this server (PARLEY_KNOWLEDGE_FETCH_URLS); "
            "retry once it is on."
        )
    limit = settings.PARLEY_KNOWLEDGE_MAX_FILE_BYTES
    try:
        page = fetch(source.url, limit=limit, timeout=settings.PARLEY_KNOWLEDGE_FETCH_TIMEOUT)
    except FetchRefused as refusal:
        raise UnreadableDocument(str(refusal)) from refusal
    raw, content_type, url = page.body, page.content_type, page.url
    if len(raw) > limit:
        raise UnreadableDocument(f"The page is over the {limit / 1e6:.1f} MB limit.")
    filename = PurePath(urlsplit(url).path).name
    kind = format_of(filename, content_type) or "html"
    if format_of(filename) is None:
        filename = {
            "pdf": "page.pdf",
            "docx": "page.docx",
            "markdown": "page.md",
            "text": "page.txt",
        }.get(kind, "page.html")
    title = title_from(filename, raw, kind) if kind in ("html", "markdown") else ""
    source.raw, source.content_type, source.filename = raw, content_type[:100], filename
    source.size_bytes = len(raw)
    if title and title != "page":
        source.title = title[:300]
    source.save(update_fields=["raw", "content_type", "filename", "size_bytes", "title"])

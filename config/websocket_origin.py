"""The WebSocket Origin check: the same rule Django's CSRF check applies to forms.

A browser names the page that opens a socket in its Origin header. The socket is
admitted only when that origin is the site itself, scheme, host and port alike (the
Host the socket was opened on, which must be one of ALLOWED_HOSTS), or one of
CSRF_TRUSTED_ORIGINS. channels' AllowedHostsOriginValidator compares the host name
alone, so `http://127.0.0.1:9999` passed for a site on `https://127.0.0.1`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalized_origin(value: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, default ports filled in; None when malformed."""
    try:
        parts = urlsplit(value.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def allowed_hosts() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]  # Django's own default in debug
    return hosts


def is_secure(scope: dict, headers: dict[bytes, bytes]) -> bool:
    """Whether the page was served over TLS: wss, or a trusted proxy says https."""
    if scope.get("scheme") == "wss":
        return True
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if not proxy:
        return False
    name, value = proxy
    header = name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin1")
    return headers.get(header, b"").decode("latin1").split(",")[0].strip() == value


def origin_allowed(scope: dict) -> bool:
    headers = dict(scope.get("headers", []))
    origin = normalized_origin(headers.get(b"origin", b"").decode("latin1"))
    if origin is None:
        return False
    trusted = {normalized_origin(value) for value in settings.CSRF_TRUSTED_ORIGINS}
    if origin in trusted:
        return True
    host = headers.get(b"host", b"").decode("latin1")
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, allowed_hosts()):
        return False
    scheme = "https" if is_secure(scope, headers) else "http"
    return origin == normalized_origin(f"{scheme}://{host}")


class SameOriginValidator:
    """ASGI middleware: a WebSocket from any other origin is closed before it is accepted.

    It returns the application's coroutine rather than awaiting it in one of its own, so
    nothing of it stays in memory while the socket is open."""

    def __init__(self, application) -> None:
        self.application = application

    def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("SameOriginValidator guards WebSockets only.")
        if origin_allowed(scope):
            return self.application(scope, receive, send)
        return WebsocketDenier()(scope, receive, send)

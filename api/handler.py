"""The request handler for programs: Django's ASGI handler for /api/ and /v1/, with an edge of
its own that runs in the event loop.

The pages' middleware stack (sessions, CSRF, messages, the active group, django-ratelimit)
is partly sync-only, so Django runs every request through it on a worker thread and hops
back to the event loop for an async view: two thread hops and the session and user work,
on every request. An API request uses none of it: it carries a bearer token, not a cookie
(api.auth). So config.asgi sends these paths here, where the middleware that still applies
runs inline:

* the security middleware (HTTPS redirect, HSTS, nosniff, referrer and opener policies),
  the common middleware (allowed hosts, the slash redirect) and the frame-options header,
  whose hooks only read the request and the settings;
* the refusal of characters the database cannot store (ontology.middleware).

Everything else is Django's: URL resolution, the request signals (which close stale
database connections), the error handlers (JSON under these paths, config.errors).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import markcoroutinefunction
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware

from ontology.middleware import unstorable_refusal

PREFIXES = ("/api/", "/v1/")

# Outermost first, as in settings.MIDDLEWARE; each hook is pure (no I/O).
INLINE = (SecurityMiddleware, CommonMiddleware, XFrameOptionsMiddleware)


class APIEdgeMiddleware:
    """The pages' pure middleware hooks, called in the event loop in their usual order: a
    request hook that answers skips the ones inside it, and only the middleware it got
    through see the response."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponse]]):
        self.get_response = get_response
        self.hooks = [middleware(get_response) for middleware in INLINE]
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        passed = []
        response = None
        for hook in self.hooks:
            passed.append(hook)
            if hasattr(hook, "process_request"):
                response = hook.process_request(request)
                if response is not None:
                    break
        if response is None:
            response = unstorable_refusal(request)
        if response is None:
            response = await self.get_response(request)
        for hook in reversed(passed):
            if hasattr(hook, "process_response"):
                response = hook.process_response(request, response)
        return response


class APIHandler(ASGIHandler):
    """Django's ASGI handler with APIEdgeMiddleware as its whole middleware stack."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        view = convert_exception_to_response(self._get_response_async)
        self._middleware_chain = convert_exception_to_response(APIEdgeMiddleware(view))


class ByPath:
    """HTTP for programs (PREFIXES) to the API handler, the rest to the pages'."""

    def __init__(self, *, api, pages) -> None:
        self.api = api
        self.pages = pages

    async def __call__(self, scope, receive, send) -> None:
        app = self.api if scope["path"].startswith(PREFIXES) else self.pages
        await app(scope, receive, send)

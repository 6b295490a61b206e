"""Who a request speaks for: an API token sent as `Authorization: Bearer prl_…`.

Every API view is wrapped by `token_required(scope, errors=...)`, the one place that
states which token scope reaches it. It sets `request.user`, `request.group` (with
`.role`) and `request.token`, counts the request in the "api" rate-limit bucket (per
user and per group, as the pages count theirs) and runs the view inside the group's
scope. A missing, malformed, revoked or expired token, an inactive user or one no longer
in the group all get the same 401. API views take no cookies, so they need no CSRF check.

Sync views run inside `group_scope(group)`; async views get it around their own code,
but a streamed body runs after they return, so it reopens the scope where it reads.

An async view may name its own admission (`then`: read its body, look up what it names,
count what it counts): it runs right after the token's, on the same database thread, so
the request reaches the view after one trip to that thread rather than one per check.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from api.errors import api_error
from billing.ratelimits import check_limits
from ontology.db_async import db_call
from ontology.errors import ErrorCode
from ontology.scoping import group_scope
from ontology.tokens import TokenAccess, authenticate, bearer_secret

ErrorResponse = Callable[..., HttpResponse]

READ = "read"
CHAT = "chat"


def _admit(request: HttpRequest, scope: str, errors: ErrorResponse) -> HttpResponse | None:
    """Authenticate and rate-limit; the refusal, or None with the request filled in."""
    access: TokenAccess | None = authenticate(bearer_secret(request.headers.get("Authorization")))
    if access is None:
        response = errors(ErrorCode.UNAUTHENTICATED, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="parley"'
        return response
    request.user = access.user
    request.group = access.group
    request.token = access.token
    if not access.allows(scope):
        return errors(
            ErrorCode.INSUFFICIENT_SCOPE,
            f"This API token lacks the '{scope}' scope.",
            status=403,
        )
    limited = check_limits(request, "api")
    if limited is not None:
        retry_after = int(limited["Retry-After"])
        return errors(
            ErrorCode.RATE_LIMITED,
            f"Too many requests. Please wait {retry_after} seconds and try again.",
            status=429,
            retry_after=retry_after,
        )
    return None


Admission = Callable[[HttpRequest], HttpResponse | None]


def token_required(
    scope: str, *, errors: ErrorResponse = api_error, then: Admission | None = None
) -> Callable:
    """Decorate a sync or async view: it is reached with a valid token holding `scope`
    (and, when `then` is given, once `then(request)` has let it through: sync, run inside
    the group's scope, a response to refuse with or None)."""

    def admit(request: HttpRequest) -> HttpResponse | None:
        refusal = _admit(request, scope, errors)
        if refusal is None and then is not None:
            with group_scope(request.group):
                refusal = then(request)
        return refusal

    def decorator(view: Callable) -> Callable:
        if iscoroutinefunction(view):

            @wraps(view)
            async def async_wrapped(request: HttpRequest, *args: Any, **kwargs: Any):
                refusal = await db_call(admit)(request)
                if refusal is not None:
                    return refusal
                with group_scope(request.group):
                    return await view(request, *args, **kwargs)

            return csrf_exempt(async_wrapped)

        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any):
            refusal = admit(request)
            if refusal is not None:
                return refusal
            with group_scope(request.group):
                return view(request, *args, **kwargs)

        return csrf_exempt(wrapped)

    return decorator

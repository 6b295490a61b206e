"""Who a request speaks for: an API token sent as `Authorization: Bearer prl_…`.

Every API view is wrapped by `token_required(scope, errors=...)`, the one place that
states which token scope reaches it. It sets `request.user`, `request.group` (with
`.role`) and `request.token`, counts the request in the "api" rate-limit bucket (per
user and per group, as the pages count theirs) and runs the view inside the group's
scope. A missing, malformed, revoked or expired token, an inactive user or one no longer
in the group all get the same 401. API views take no cookies, so they need no CSRF check.

A token this process admitted before is taken from its cache (ontology.token_cache) once
Redis confirms the token's version, read in the same Lua call that counts the request: no
query. Whatever ends a token bumps that version when it commits, so the next request after
a revocation is refused here as before. Without Redis the database decides (and the count,
which needs Redis, fails as it always did).

Sync views run inside `group_scope(group)`; async views get it around their own code,
but a streamed body runs after they return, so it reopens the scope where it reads.

For an async view a cached token is admitted in the event loop (its count and version in
one call of redis-py's asyncio client, ontology.async_redis): no trip to a database
thread. Any other token takes one trip, where the database decides as above.

An async view may name its own admission (`then`: read its body, look up what it names,
count what it counts). An async `then` runs in the event loop after the token's and
leaves it only for what is not cached; a sync one runs on the database thread, in the
same trip as the token's when there is one, so the request reaches the view after one
trip to that thread rather than one per check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from redis.exceptions import RedisError

from api.errors import api_error
from billing.ratelimits import Counted, acount_request, count_request
from ontology import token_cache
from ontology.db_async import db_call
from ontology.errors import ErrorCode
from ontology.scoping import group_scope
from ontology.tokens import TokenAccess, bearer_secret, digest_of

ErrorResponse = Callable[..., HttpResponse]

READ = "read"
CHAT = "chat"


def _authenticated(
    request: HttpRequest, secret: str | None, scope: str, counted: Counted | None = None
) -> tuple[TokenAccess | None, Counted | None]:
    """The secret's access, and the request's count in the "api" bucket if it was made on
    the way. A token this process admitted before (ontology.token_cache) is counted first,
    in the call that also reads its version: it stands, with no query, if that version is
    unchanged. Otherwise, and without Redis, the database decides. `counted`: the count
    the event loop made (with the cached entry's version, which had changed)."""
    if secret is None:
        return None, None
    digest = digest_of(secret)
    if counted is not None:
        return token_cache.admit(secret, digest, version=counted.versions[0]), counted
    cached = token_cache.cached(digest)
    if cached is None or not cached.access.allows(scope):
        return token_cache.admit(secret, digest), None
    _fill(request, cached.access)
    try:
        counted = count_request(request, "api", versions=[cached.key])
    except RedisError:
        token_cache.forget(digest)
        return token_cache.admit(secret, digest, keep=False), None
    (version,) = counted.versions
    if version == cached.version:
        return cached.access, counted
    # Changed since: the version just read predates the query, so what it finds may be kept.
    # The count stands (a token's user and group never change).
    return token_cache.admit(secret, digest, version=version), counted


def _fill(request: HttpRequest, access: TokenAccess) -> None:
    request.user = access.user
    request.group = access.group
    request.token = access.token


def _refused(
    request: HttpRequest, access: TokenAccess | None, scope: str, errors: ErrorResponse
) -> HttpResponse | None:
    """401 without access, 403 without the scope; else None, with the request filled in."""
    if access is None:
        response = errors(ErrorCode.UNAUTHENTICATED, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="parley"'
        return response
    _fill(request, access)
    if not access.allows(scope):
        return errors(
            ErrorCode.INSUFFICIENT_SCOPE,
            f"This API token lacks the '{scope}' scope.",
            status=403,
        )
    return None


def _over_limit(counted: Counted, errors: ErrorResponse) -> HttpResponse | None:
    if counted.retry_after is None:
        return None
    retry_after = counted.retry_after
    return errors(
        ErrorCode.RATE_LIMITED,
        f"Too many requests. Please wait {retry_after} seconds and try again.",
        status=429,
        retry_after=retry_after,
    )


def _admit(
    request: HttpRequest, scope: str, errors: ErrorResponse, counted: Counted | None = None
) -> HttpResponse | None:
    """Authenticate and rate-limit; the refusal, or None with the request filled in."""
    secret = bearer_secret(request.headers.get("Authorization"))
    access, counted = _authenticated(request, secret, scope, counted)
    refusal = _refused(request, access, scope, errors)
    if refusal is not None:
        return refusal
    if counted is None:
        counted = count_request(request, "api")
    return _over_limit(counted, errors)


async def _admit_in_loop(
    request: HttpRequest,
    scope: str,
    errors: ErrorResponse,
    on_thread: Callable,
    peek: Peek | None,
) -> tuple[HttpResponse | None, bool]:
    """_admit from the event loop: a token this process holds, and whose version the
    counting call confirms, is admitted here (with `request.peeked`: the raw values of the
    keys `peek(request)` names, read in that call); the rest runs
    `on_thread(request, counted)` on a database thread. The refusal or None, and whether
    `on_thread` ran."""
    secret = bearer_secret(request.headers.get("Authorization"))
    if secret is None:
        return _refused(request, None, scope, errors), False
    digest = digest_of(secret)
    cached = token_cache.cached(digest)
    if cached is None or not cached.access.allows(scope):
        return await db_call(on_thread)(request, None), True
    _fill(request, cached.access)
    peeking = peek(request) if peek is not None else []
    try:
        counted = await acount_request(request, "api", versions=[cached.key], peek=peeking)
    except RedisError:
        token_cache.forget(digest)
        return await db_call(on_thread)(request, None), True
    if counted.versions != [cached.version]:
        return await db_call(on_thread)(request, counted), True
    request.peeked = dict(zip(peeking, counted.peeked, strict=True))
    return _over_limit(counted, errors), False


Admission = Callable[[HttpRequest], HttpResponse | None]
AsyncAdmission = Callable[[HttpRequest], Awaitable[HttpResponse | None]]
Peek = Callable[[HttpRequest], list[str]]


def token_required(
    scope: str,
    *,
    errors: ErrorResponse = api_error,
    then: Admission | AsyncAdmission | None = None,
    peek: Peek | None = None,
) -> Callable:
    """Decorate a sync or async view: it is reached with a valid token holding `scope`
    (and, when `then` is given, once `then(request)` has let it through: run inside the
    group's scope, a response to refuse with or None). A sync `then` runs on the database
    thread of the token's admission; an async one (async views only) in the event loop.
    `peek(request)` (async views): Redis keys an async `then` wants read with the token's
    check; when the loop admitted the token, `request.peeked` maps each to its raw value
    (None: missing), else it is not set and `then` reads them itself."""
    then_in_loop = then is not None and iscoroutinefunction(then)

    def admit(request: HttpRequest, counted: Counted | None = None) -> HttpResponse | None:
        refusal = _admit(request, scope, errors, counted)
        if refusal is None and then is not None and not then_in_loop:
            with group_scope(request.group):
                refusal = then(request)
        return refusal

    def then_on_thread(request: HttpRequest) -> HttpResponse | None:
        with group_scope(request.group):
            return then(request)

    def decorator(view: Callable) -> Callable:
        if iscoroutinefunction(view):

            @wraps(view)
            async def async_wrapped(request: HttpRequest, *args: Any, **kwargs: Any):
                refusal, ran = await _admit_in_loop(request, scope, errors, admit, peek)
                if refusal is None and then_in_loop:
                    with group_scope(request.group):
                        refusal = await then(request)
                elif refusal is None and then is not None and not ran:
                    refusal = await db_call(then_on_thread)(request)
                if refusal is not None:
                    return refusal
                with group_scope(request.group):
                    return await view(request, *args, **kwargs)

            return csrf_exempt(async_wrapped)

        if then_in_loop:
            raise TypeError("An async `then` needs an async view.")

        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any):
            refusal = admit(request)
            if refusal is not None:
                return refusal
            with group_scope(request.group):
                return view(request, *args, **kwargs)

        return csrf_exempt(wrapped)

    return decorator

"""Rate limits: HTTP buckets answered with 429, and the plan's message limit.

django-ratelimit's counters live in the shared Redis cache (add + incr, both atomic),
so every daphne process counts against the same limit.

    @limit_requests("upload")          # rates: settings.PARLEY_HTTP_RATE_LIMITS["upload"]
    def knowledge_upload(request): ...

Each bucket names its rates by key: "user" (the signed-in user), "group" (the
active group), "ip" (the client address) and "username" (the username field of a
login form, counted per client address, so guesses from one place cannot lock the
account's owner out everywhere). A request is counted against every key that
applies to it and refused, with 429, a plain sentence and Retry-After, as soon as
one is over. A refused sign-in is audited in the groups of the account it named.

Messages (every frame or request that starts an answer) are limited per person and
per group at the rates of the group's plan (billing.Plan): `message_rate_limited`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django_ratelimit.core import _get_ip, get_usage

from billing.selectors import plan_for
from ontology.errors import ErrorCode
from ontology.events import EventType
from ontology.models import Group, User
from ontology.selectors import groups_for_user
from ontology.services import event_record

logger = logging.getLogger(__name__)

UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
FALLBACK_RETRY_AFTER = 60


def record_limit_hit(
    usage: dict[str, Any],
    *,
    group: Group | None,
    user: User | None,
    bucket: str,
    scope: str,
    retry_after: int,
    groups: Iterable[Group] = (),
    ip: str = "",
) -> None:
    """Audit a limit hit once per window: only the first refused request is recorded."""
    if usage["count"] != usage["limit"] + 1:
        return
    targets = [group] if group is not None else list(groups)
    if not targets:
        logger.info("rate limit hit: %s/%s (no group to audit it in)", bucket, scope)
    metadata = {
        "bucket": bucket,
        "scope": scope,
        "limit": usage["limit"],
        "retry_after": retry_after,
    }
    if ip:
        metadata["ip"] = ip
    for target in targets:
        event_record(group=target, type=EventType.RATE_LIMIT_HIT, actor=user, metadata=metadata)


def _counter_key(request: HttpRequest, key: str) -> str | Callable | None:
    """django-ratelimit's `key` for this request, or None when the key does not apply."""
    if key == "ip":
        return "ip"  # django-ratelimit reads the address (RATELIMIT_IP_META_KEY behind a proxy)
    user = getattr(request, "user", None)
    group = getattr(request, "group", None)
    if key == "user":
        value = str(user.pk) if user is not None and user.is_authenticated else None
    elif key == "group":
        value = str(group.pk) if group is not None else None
    elif key == "username":
        username = (request.POST.get("username") or "").strip().lower()
        # The address as the "ip" key counts it (RATELIMIT_IP_META_KEY, the IPv6 mask).
        value = f"{username} {_get_ip(request)}" if username else None
    else:
        raise ValueError(f"Unknown rate-limit key {key!r}.")
    return None if value is None else (lambda _group, _request: value)


def _audit_groups(request: HttpRequest) -> list[Group]:
    """Where a hit by a signed-out client is audited: the groups of the account it aimed at."""
    username = (request.POST.get("username") or "").strip()
    if not username:
        return []
    target = User.objects.filter(username__iexact=username).first()
    return list(groups_for_user(user=target)) if target is not None else []


def check_limits(request: HttpRequest, bucket: str) -> HttpResponse | None:
    """Count this request in the bucket; the 429 response when it is over a limit."""
    for key, rate in settings.PARLEY_HTTP_RATE_LIMITS[bucket].items():
        counter_key = _counter_key(request, key)
        if counter_key is None:
            continue
        usage = get_usage(
            request, group=f"http:{bucket}:{key}", key=counter_key, rate=rate, increment=True
        )
        if usage is None or not usage["should_limit"]:
            continue
        retry_after = max(1, usage["time_left"])
        user = request.user if request.user.is_authenticated else None
        group = getattr(request, "group", None)
        signed_out = group is None and user is None
        record_limit_hit(
            usage,
            group=group,
            user=user,
            bucket=bucket,
            scope=key,
            retry_after=retry_after,
            groups=_audit_groups(request) if signed_out else (),
            ip=_get_ip(request) if signed_out else "",
        )
        return too_many_requests(request, retry_after)
    return None


def limit_requests(bucket: str, *, methods: Iterable[str] = UNSAFE_METHODS) -> Callable:
    """Decorate a view so the bucket's limits apply to the given methods (writes by default)."""
    methods = {m.upper() for m in methods}

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method in methods:
                refusal = check_limits(request, bucket)
                if refusal is not None:
                    return refusal
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def too_many_requests(request: HttpRequest, retry_after: int) -> HttpResponse:
    message = f"Too many requests. Please wait {retry_after} seconds and try again."
    wants_json = request.accepts("application/json") and not request.accepts("text/html")
    if wants_json:
        response = JsonResponse(
            {"code": ErrorCode.RATE_LIMITED, "message": message, "retry_after": retry_after},
            status=429,
        )
    else:
        response = render(request, "billing/rate_limited.html", {"message": message}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def ratelimited_view(request: HttpRequest, exception: Exception) -> HttpResponse:
    """settings.RATELIMIT_VIEW: django-ratelimit's own decorator answers 429 too."""
    return too_many_requests(request, FALLBACK_RETRY_AFTER)


# --- Messages: one policy for the socket and HTTP alike, rates from the group's plan ------


class RateLimited(Exception):
    """Over a message limit: try again in `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


def message_rates(group: Group) -> dict[str, str]:
    plan = plan_for(group)
    return {"user": plan.message_rate_user, "group": plan.message_rate_group}


def message_rate_limited(*, user: User, group: Group) -> int | None:
    """Count one message; seconds to wait when the user or the group is over its limit."""
    rates = message_rates(group)
    for scope, value in (("user", user.pk), ("group", group.pk)):
        usage = get_usage(
            None,
            group=f"messages:{scope}",
            key=lambda _group, _request, value=value: str(value),
            rate=rates[scope],
            increment=True,
        )
        if usage is not None and usage["should_limit"]:
            retry_after = max(1, usage["time_left"])
            record_limit_hit(
                usage,
                group=group,
                user=user,
                bucket="messages",
                scope=scope,
                retry_after=retry_after,
            )
            return retry_after
    return None

"""Rate limits: HTTP buckets answered with 429, and the plan's message limit.

The counters live in the shared Redis cache (billing.counters: fixed windows, atomic
increments, every counter of a request in one round trip), so every daphne process
counts against the same limit.

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django_ratelimit.core import _get_ip

from billing.counters import Claim, Count, Tally, acount_and_read, count_and_read
from billing.selectors import cached_plan, current_plan
from ontology.db_async import db_call
from ontology.errors import ErrorCode
from ontology.events import EventType
from ontology.models import Group, User
from ontology.selectors import groups_for_user
from ontology.services import event_record

logger = logging.getLogger(__name__)

UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
FALLBACK_RETRY_AFTER = 60


def record_limit_hit(
    usage: Count,
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
    if not usage.first_over:
        return
    targets = [group] if group is not None else list(groups)
    if not targets:
        logger.info("rate limit hit: %s/%s (no group to audit it in)", bucket, scope)
    metadata = {
        "bucket": bucket,
        "scope": scope,
        "limit": usage.limit,
        "retry_after": retry_after,
    }
    if ip:
        metadata["ip"] = ip
    for target in targets:
        event_record(group=target, type=EventType.RATE_LIMIT_HIT, actor=user, metadata=metadata)


def _counter_value(request: HttpRequest, key: str) -> str | None:
    """What the key counts for this request (a user id, a group id, an address...), or None
    when the key does not apply."""
    user = getattr(request, "user", None)
    group = getattr(request, "group", None)
    if key == "ip":
        # django-ratelimit's reading of the address (RATELIMIT_IP_META_KEY, the IPv6 mask).
        return _get_ip(request)
    if key == "user":
        return str(user.pk) if user is not None and user.is_authenticated else None
    if key == "group":
        return str(group.pk) if group is not None else None
    if key == "username":
        username = (request.POST.get("username") or "").strip().lower()
        return f"{username} {_get_ip(request)}" if username else None
    raise ValueError(f"Unknown rate-limit key {key!r}.")


def _audit_groups(request: HttpRequest) -> list[Group]:
    """Where a hit by a signed-out client is audited: the groups of the account it aimed at."""
    username = (request.POST.get("username") or "").strip()
    if not username:
        return []
    target = User.objects.filter(username__iexact=username).first()
    return list(groups_for_user(user=target)) if target is not None else []


@dataclass(frozen=True)
class Counted:
    """A request counted in a bucket: the seconds to wait if it is over a limit, and what
    was read in the same round trip (billing.counters.count_and_read)."""

    retry_after: int | None
    versions: list[str]
    peeked: list[bytes | None] = field(default_factory=list)


def _keyed(request: HttpRequest, bucket: str) -> list[tuple[str, str, str]]:
    """(key, counter name, rate) of each of the bucket's keys that apply to the request."""
    keyed = []
    for key, rate in settings.PARLEY_HTTP_RATE_LIMITS[bucket].items():
        value = _counter_value(request, key)
        if value is not None:
            keyed.append((key, f"http:{bucket}:{key}:{value}", rate))
    return keyed


def _over(keyed: list, counts: list[Count]) -> tuple[str, Count] | None:
    for (key, _, _), usage in zip(keyed, counts, strict=False):
        if usage.over:
            return key, usage
    return None


def _record_request_hit(request: HttpRequest, bucket: str, key: str, usage: Count) -> None:
    user = request.user if request.user.is_authenticated else None
    group = getattr(request, "group", None)
    signed_out = group is None and user is None
    record_limit_hit(
        usage,
        group=group,
        user=user,
        bucket=bucket,
        scope=key,
        retry_after=usage.time_left,
        groups=_audit_groups(request) if signed_out else (),
        ip=_get_ip(request) if signed_out else "",
    )


def count_request(
    request: HttpRequest,
    bucket: str,
    *,
    versions: Sequence[str] = (),
    peek: Sequence[str] = (),
) -> Counted:
    """Count this request in the bucket (auditing the first refusal of a window) and read
    `versions` and `peek` in the same round trip (count_and_read). Raises redis' errors when
    Redis cannot be reached."""
    keyed = _keyed(request, bucket)
    if not (keyed or versions or peek):
        return Counted(None, [])
    tally = count_and_read([(name, rate) for _, name, rate in keyed], versions, peek)
    over = _over(keyed, tally.counts)
    if over is not None:
        _record_request_hit(request, bucket, *over)
    return _counted(over, tally)


async def acount_request(
    request: HttpRequest,
    bucket: str,
    *,
    versions: Sequence[str] = (),
    peek: Sequence[str] = (),
) -> Counted:
    """count_request from the event loop: only the audit of a first refusal leaves it."""
    keyed = _keyed(request, bucket)
    if not (keyed or versions or peek):
        return Counted(None, [])
    tally = await acount_and_read([(name, rate) for _, name, rate in keyed], versions, peek)
    over = _over(keyed, tally.counts)
    if over is not None and over[1].first_over:
        await db_call(_record_request_hit)(request, bucket, *over)
    return _counted(over, tally)


def _counted(over: tuple[str, Count] | None, tally: Tally) -> Counted:
    retry_after = None if over is None else over[1].time_left
    return Counted(retry_after, tally.versions, tally.peeked)


def check_limits(request: HttpRequest, bucket: str) -> HttpResponse | None:
    """Count this request in the bucket; the 429 response when it is over a limit."""
    retry_after = count_request(request, bucket).retry_after
    return None if retry_after is None else too_many_requests(request, retry_after)


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


def _rates_of(plan) -> dict[str, str]:
    return {"user": plan.message_rate_user, "group": plan.message_rate_group}


def message_rate_limited(*, user: User, group: Group) -> int | None:
    """Count one message; seconds to wait when the user or the group is over its limit."""
    return message_counted(user=user, group=group).retry_after


def message_counted(
    *, user: User, group: Group, claim: Claim | None = None, peek: Sequence[str] = ()
) -> MessageCount:
    """Count one message, and in the same round trip set `claim`'s key first (a thread's
    run lock: a claim that is held counts nothing) and read the `peek` keys
    (billing.counters); from a thread (a turn's start trip, chat.runs), which also audits
    a first refusal."""
    hits = _message_hits(user=user, group=group, rates=_rates_of(current_plan(group)))
    tally = count_and_read(hits, peek=peek, claim=claim)
    retry_after = _message_refusal(user=user, group=group, counts=tally.counts)
    return MessageCount(retry_after, tally)


async def amessage_rate_limited(*, user: User, group: Group) -> int | None:
    """message_rate_limited from the event loop: it leaves it only to read a plan this
    process has not read lately, or to audit a first refusal."""
    return (await amessage_counted(user=user, group=group)).retry_after


async def amessage_counted(
    *, user: User, group: Group, claim: Claim | None = None, peek: Sequence[str] = ()
) -> MessageCount:
    """Count one message from the event loop, and in the same round trip (billing.counters)
    set `claim`'s key first (a thread's run lock: a claim that is held counts nothing) and
    read the `peek` keys. It leaves the loop only to read a plan this process has not read
    lately, or to audit a first refusal."""
    plan = cached_plan(group) or await db_call(current_plan)(group)
    hits = _message_hits(user=user, group=group, rates=_rates_of(plan))
    tally = await acount_and_read(hits, peek=peek, claim=claim)
    over = _message_over(user=user, group=group, counts=tally.counts)
    if over is None:
        return MessageCount(None, tally)
    if over[1].first_over:
        await db_call(_message_refusal)(user=user, group=group, counts=tally.counts)
    return MessageCount(over[1].time_left, tally)


@dataclass(frozen=True)
class MessageCount:
    """A message counted: the seconds to wait when it is over a limit, and the round trip's
    whole answer (was the claim made, what was peeked)."""

    retry_after: int | None
    tally: Tally


def _message_hits(*, user: User, group: Group, rates: dict[str, str]) -> list[tuple[str, str]]:
    scopes = (("user", user.pk), ("group", group.pk))
    return [(f"messages:{scope}:{value}", rates[scope]) for scope, value in scopes]


def _message_over(*, user: User, group: Group, counts: list[Count]) -> tuple[str, Count] | None:
    for scope, usage in zip(("user", "group"), counts, strict=False):
        if usage.over:
            return scope, usage
    return None


def _message_refusal(*, user: User, group: Group, counts: list[Count]) -> int | None:
    """The wait when a count is over its limit (its first refusal audited), or None."""
    over = _message_over(user=user, group=group, counts=counts)
    if over is None:
        return None
    scope, usage = over
    record_limit_hit(
        usage,
        group=group,
        user=user,
        bucket="messages",
        scope=scope,
        retry_after=usage.time_left,
    )
    return usage.time_left

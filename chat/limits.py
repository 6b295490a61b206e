"""The message rate-limit policy, one for WebSockets and HTTP alike.

Counters live in the shared Redis cache through django-ratelimit (add + incr,
both atomic), so every daphne process counts against the same limit.
"""

from __future__ import annotations

from django.conf import settings
from django_ratelimit.core import get_usage

from ontology.models import Group, User


def message_rates(group: Group) -> dict[str, str]:
    limits = settings.PARLEY_MESSAGE_RATE_LIMITS
    return limits.get(group.plan) or limits["free"]


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
            return max(1, usage["time_left"])
    return None

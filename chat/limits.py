"""The message rate-limit policy, one for WebSockets and HTTP alike.

Counters live in the shared Redis cache through django-ratelimit (add + incr,
both atomic), so every daphne process counts against the same limit. The rates
come from the group's plan (billing.Plan, editable in the admin).
"""

from __future__ import annotations

from django_ratelimit.core import get_usage

from billing.ratelimits import record_limit_hit
from billing.selectors import plan_for
from ontology.models import Group, User


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
                usage, group=group, user=user, bucket="messages", scope=scope,
                retry_after=retry_after,
            )  # fmt: skip
            return retry_after
    return None

"""Write paths for billing: the ledger, budget reservations and the daily roll-ups.

Budgets are reserve-then-settle. Before a provider call, `budget_reserve` locks the
group's row for the month, refuses when spent + held already reach the plan's
budget, and otherwise holds the call's worst case. `ai_calls_record` writes the
call's ledger row, adds it to the month's total and deletes the reservation, in one
transaction under the same lock. Admission needs spent + held below the budget and
holds at least the call's real cost, so concurrent runs overshoot a budget by at
most one reservation. A reservation nobody settles stops counting when it expires.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from agents.catalog import Prices
from billing.models import (
    COST_QUANTUM,
    AICall,
    BudgetReservation,
    MonthlyUsage,
    Plan,
    RolledUpDay,
    UsageDaily,
)
from billing.selectors import BudgetStatus, budget_status, day_bounds, month_start, plan_for
from ontology.models import Group, User
from ontology.scoping import ensure_group_allowed, group_scope, scopes_disabled
from ontology.services import event_record

logger = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    exact: bool = True


def cost_of(*, prices: Prices, usage: Usage) -> Decimal:
    """Dollars for one call. Input tokens include the cached ones, which have their own price."""
    cached = min(usage.cached_tokens, usage.input_tokens)
    total = (
        (usage.input_tokens - cached) * prices.input
        + cached * prices.cached_input
        + usage.output_tokens * prices.output
    ) / MILLION
    return total.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class LedgerEntry:
    """One provider call, ready to be written. `id` is deterministic per call."""

    id: uuid.UUID
    group_id: int
    user_id: int | None
    agent_id: int | None
    thread_id: int | None
    run_id: uuid.UUID | None
    purpose: str
    provider: str
    model: str
    step: int
    attempt: int
    usage: Usage
    prices: Prices
    latency_ms: int
    ttft_ms: int | None
    status: str
    error_code: str = ""

    @property
    def cost(self) -> Decimal:
        return cost_of(prices=self.prices, usage=self.usage)


@contextmanager
def _scope_of(group_id: int) -> Iterator[Group]:
    """The scope of a group known by id (ledger entries carry ids); the scope needs only the pk."""
    group = Group(pk=group_id)
    ensure_group_allowed(group)
    with group_scope(group):
        yield group


def _lock_month(group_id: int, month: date) -> MonthlyUsage:
    usage, _ = MonthlyUsage.objects.select_for_update().get_or_create(
        group_id=group_id, month=month
    )
    return usage


def ai_calls_record(*, entries: list[LedgerEntry], settle: Iterable[uuid.UUID] = ()) -> int:
    """Write the calls' ledger rows, count them in their month, and settle their reservations.

    A row whose id is already there is skipped and counted nowhere: a replay never
    charges twice. Returns how many rows were new.
    """
    settle = list(settle)
    by_group: dict[int, list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        by_group[entry.group_id].append(entry)
    now = timezone.now()
    month = month_start(timezone.localdate(now))
    written = 0
    with transaction.atomic():
        for group_id in sorted(by_group):  # one lock order, so two writers never deadlock
            with _scope_of(group_id):
                usage = _lock_month(group_id, month)
                group_entries = by_group[group_id]
                existing = set(
                    AICall.objects.filter(pk__in=[e.id for e in group_entries]).values_list(
                        "pk", flat=True
                    )
                )
                new = [e for e in group_entries if e.id not in existing]
                AICall.objects.bulk_create(
                    [_row(e, created_at=now) for e in new], ignore_conflicts=True
                )
                if new:
                    usage.cost += sum((e.cost for e in new), Decimal(0))
                    usage.tokens += sum(e.usage.input_tokens + e.usage.output_tokens for e in new)
                    usage.calls += len(new)
                    usage.save(update_fields=["cost", "tokens", "calls"])
                if settle:
                    BudgetReservation.objects.filter(pk__in=settle).delete()
                written += len(new)
    return written


def _row(e: LedgerEntry, *, created_at) -> AICall:
    return AICall(
        id=e.id,
        group_id=e.group_id,
        user_id=e.user_id,
        agent_id=e.agent_id,
        thread_id=e.thread_id,
        run_id=e.run_id,
        purpose=e.purpose,
        provider=e.provider,
        model=e.model,
        step=e.step,
        attempt=e.attempt,
        input_tokens=e.usage.input_tokens,
        output_tokens=e.usage.output_tokens,
        cached_tokens=e.usage.cached_tokens,
        usage_exact=e.usage.exact,
        input_price=e.prices.input,
        output_price=e.prices.output,
        cached_price=e.prices.cached_input,
        cost=e.cost,
        latency_ms=e.latency_ms,
        ttft_ms=e.ttft_ms,
        status=e.status,
        error_code=e.error_code,
        created_at=created_at,
    )


# --- Budgets ---------------------------------------------------------------------------


class QuotaExceeded(Exception):
    """The group's monthly budget is used up; no provider call may start."""

    code = "quota_exceeded"

    def __init__(self, status: BudgetStatus) -> None:
        self.status = status
        super().__init__(
            f"The monthly AI budget is used up; it renews on {status.resets_on:%d %B %Y}."
        )


def _refusal(*, group: Group, user: User | None, status: BudgetStatus, **metadata: Any) -> None:
    event_record(
        group=group, type="quota.exceeded", actor=user,
        metadata={"month": f"{status.month:%Y-%m}", "spent": str(status.spent),
                  "held": str(status.held), "tokens": status.tokens,
                  "budget": None if status.budget is None else str(status.budget),
                  "token_budget": status.token_budget, **metadata},
    )  # fmt: skip


def quota_check(*, group: Group, user: User | None, run_id: uuid.UUID | None = None) -> Plan:
    """Refuse a run before it does anything when the group is already over its budget.

    A cheap look without a lock: `budget_reserve` is the exact check, call by call.
    Returns the group's plan, for the run's reservations.
    """
    plan = plan_for(group)
    if not plan.has_budget:
        return plan
    with group_scope(group):
        status = budget_status(group=group, plan=plan, with_held=True)
        if status.over_with_held():
            _refusal(group=group, user=user, status=status, run_id=str(run_id or ""))
            raise QuotaExceeded(status)
    return plan


def budget_reserve(
    *,
    group: Group,
    cost: Decimal,
    tokens: int,
    user: User | None = None,
    run_id: uuid.UUID | None = None,
    plan: Plan | None = None,
) -> BudgetReservation | None:
    """Hold a call's worst case against the month's budget, or raise QuotaExceeded.

    None when the plan has no budget (nothing to hold). Settle the reservation with
    `ai_calls_record(..., settle=[reservation.pk])`, or `budget_release` when no
    call was made. Pass `plan` when it is at hand, to save a query.
    """
    plan = plan or plan_for(group)
    if not plan.has_budget:
        return None
    ensure_group_allowed(group)
    now = timezone.now()
    with transaction.atomic(), group_scope(group):
        usage = _lock_month(group.pk, month_start(timezone.localdate(now)))
        held = BudgetReservation.objects.filter(expires_at__gt=now).aggregate(
            cost=Sum("cost"), tokens=Sum("tokens")
        )
        status = BudgetStatus(
            month=usage.month, spent=usage.cost, tokens=usage.tokens,
            budget=plan.monthly_budget, token_budget=plan.monthly_token_budget,
            held=held["cost"] or Decimal(0), held_tokens=held["tokens"] or 0,
        )  # fmt: skip
        if not status.over_with_held():
            return BudgetReservation.objects.create(
                group=group, run_id=run_id, cost=cost, tokens=tokens, created_at=now,
                expires_at=now + timedelta(seconds=settings.PARLEY_BUDGET_RESERVATION_TTL),
            )  # fmt: skip
        _refusal(group=group, user=user, status=status, run_id=str(run_id or ""),
                 wanted=str(cost))  # fmt: skip
    raise QuotaExceeded(status)


def budget_release(*, group: Group, reservation_ids: Iterable[uuid.UUID]) -> None:
    """Give back reservations whose calls never reached the provider."""
    ids = [i for i in reservation_ids if i is not None]
    if ids:
        with group_scope(group):
            BudgetReservation.objects.filter(pk__in=ids).delete()


def reservations_cleanup(*, older_than: timedelta = timedelta(hours=1)) -> int:
    """Delete expired reservations (they already count for nothing): platform job."""
    with scopes_disabled():
        deleted, _ = BudgetReservation.objects.filter(
            expires_at__lt=timezone.now() - older_than
        ).delete()
    return deleted


# --- Daily roll-ups ----------------------------------------------------------------------


def usage_rollup_day(*, day: date) -> int:
    """Re-sum one day of the ledger into UsageDaily, for every group: idempotent.

    The day's marker row is locked first, so two runs for the same day take turns;
    the old rows are replaced in the same transaction, so readers see one or the other.
    Returns the number of ledger rows summed.
    """
    if day >= timezone.localdate():
        raise ValueError("Only complete days can be rolled up.")
    start, end = day_bounds(day, day)
    with transaction.atomic(), scopes_disabled():
        marker, _ = RolledUpDay.objects.select_for_update().get_or_create(day=day)
        UsageDaily.objects.filter(day=day).delete()
        sums = (
            AICall.objects.filter(created_at__gte=start, created_at__lt=end)
            .values("group_id", "provider", "model", "agent_id", "user_id")
            .annotate(
                calls=Count("id"),
                failed_calls=Count("id", filter=Q(status=AICall.Status.FAILED)),
                input_tokens=Sum("input_tokens"),
                output_tokens=Sum("output_tokens"),
                cached_tokens=Sum("cached_tokens"),
                cost=Sum("cost"),
            )
            .order_by()
        )
        rows = [UsageDaily(day=day, **row) for row in sums]
        UsageDaily.objects.bulk_create(rows)
        marker.rolled_up_at = timezone.now()
        marker.calls = sum(row.calls for row in rows)
        marker.save()
    return marker.calls


def usage_rollup_recent(*, days: int | None = None) -> list[date]:
    """Roll up the last `days` complete days (settings.PARLEY_ROLLUP_DAYS)."""
    today = timezone.localdate()
    done = []
    for back in range(days or settings.PARLEY_ROLLUP_DAYS, 0, -1):
        day = today - timedelta(days=back)
        usage_rollup_day(day=day)
        done.append(day)
    return done

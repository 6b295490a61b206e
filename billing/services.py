"""Write paths for billing: the ledger, budget reservations and the daily roll-ups.

Budgets are reserve-then-settle. Before a provider call, `budget_reserve` locks the
group's row for the month, refuses when spent + held already reach the plan's
budget, and otherwise holds the call's worst case. `ai_calls_record` writes the
call's ledger row, adds it to the month's total (which takes the same lock) and deletes
the reservation, in one transaction. Admission needs spent + held below the budget and
holds at least the call's real cost, so concurrent runs overshoot a budget by at
most one reservation. A reservation nobody settles stops counting when it expires.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from billing.models import (
    COST_QUANTUM,
    AICall,
    BudgetReservation,
    RolledUpDay,
    UsageDaily,
)
from billing.pricing import Prices
from billing.selectors import BudgetStatus, day_bounds, month_start, plan_defaults, plan_for
from ontology.errors import ErrorCode
from ontology.events import EventType
from ontology.models import Group, Thing, User
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


# The budget's hot path runs before every provider call, so it is plain SQL (a statement
# costs a fifth of an ORM query) with the group filter written out in each statement.
_CREATE_MONTH = """
    INSERT INTO billing_monthlyusage (group_id, month, cost, tokens, calls)
    VALUES (%s, %s, 0, 0, 0) ON CONFLICT (group_id, month) DO NOTHING
"""
_ADD_TO_MONTH = """
    UPDATE billing_monthlyusage SET cost = cost + %s, tokens = tokens + %s, calls = calls + %s
    WHERE group_id = %s AND month = %s
"""
_SELECT_MONTH_AND_PLAN = """
    SELECT m.cost, m.tokens, p.id, p.monthly_budget, p.monthly_token_budget
    FROM billing_monthlyusage m LEFT JOIN billing_plan p ON p.code = %s
    WHERE m.group_id = %s AND m.month = %s FOR UPDATE OF m
"""
# A statement of its own, after the lock: its snapshot includes every reservation committed
# by whoever held the lock before. Its condition is BudgetStatus.over_with_held, negated.
_RESERVE_IF_UNDER = """
    INSERT INTO billing_budgetreservation
        (id, group_id, run_id, cost, tokens, created_at, expires_at)
    SELECT %(id)s, %(group)s, %(run)s, %(cost)s, %(tokens)s, %(now)s, %(expires)s
    FROM (SELECT COALESCE(SUM(cost), 0) AS cost, COALESCE(SUM(tokens), 0) AS tokens
          FROM billing_budgetreservation
          WHERE group_id = %(group)s AND expires_at > %(now)s) AS held
    WHERE (%(budget)s::numeric IS NULL OR %(spent)s + held.cost < %(budget)s)
      AND (%(token_budget)s::bigint IS NULL OR %(spent_tokens)s + held.tokens < %(token_budget)s)
    RETURNING id
"""
_HELD = """
    SELECT COALESCE(SUM(cost), 0), COALESCE(SUM(tokens), 0) FROM billing_budgetreservation
    WHERE group_id = %s AND expires_at > %s
"""
_SETTLE = "DELETE FROM billing_budgetreservation WHERE group_id = %s AND id = ANY(%s)"
# Only the rows it inserted come back: a row already there (a replay) is counted nowhere.
# Its columns are every concrete field of AICall, in the order _values gives them.
_INSERT_CALLS = """
    INSERT INTO billing_aicall (
        id, group_id, user_id, agent_id, thread_id, run_id, purpose, provider, model, step,
        attempt, input_tokens, output_tokens, cached_tokens, usage_exact, input_price,
        output_price, cached_price, cost, latency_ms, ttft_ms, status, error_code, created_at
    ) VALUES {rows}
    ON CONFLICT (id) DO NOTHING RETURNING id
"""
_CALL_ROW = "(" + ", ".join(["%s"] * 24) + ")"


def _lock_month(cursor, group_id: int, month: date, *, query: str, params: tuple = ()) -> tuple:
    """Lock the group's row for the month, creating it first if needed; the query's row.

    Every budget check and every ledger write for a group takes this lock (the ledger by
    its UPDATE, _add_to_month), so they happen one at a time and each sees the others'
    committed work.
    """
    cursor.execute(query, [*params, group_id, month])
    row = cursor.fetchone()
    if row is None:
        cursor.execute(_CREATE_MONTH, [group_id, month])
        cursor.execute(query, [*params, group_id, month])
        row = cursor.fetchone()
    return row


def ai_calls_record(*, entries: list[LedgerEntry], settle: Iterable[uuid.UUID] = ()) -> int:
    """Write the calls' ledger rows, count them in their month, and settle their reservations.

    A row whose id is already there is skipped and counted nowhere: a replay never
    charges twice. Returns how many rows were new. Inside a caller's transaction (a run's
    answer) it is part of it, with no savepoint: a failure here fails the whole.

    Per group, in one order (groups, then ids, sorted, so two writers never deadlock): one
    INSERT that returns the ids it wrote, one UPDATE of the month by those rows, which takes
    the month's lock until commit, and the settling DELETE. The budget check
    (budget_reserve) reads only the month row and the reservations under that lock, never
    the ledger, so the rows need not be written under it: it sees the month's new total
    and the reservations gone together, when this commits.
    """
    settle = [reservation for reservation in settle if reservation is not None]
    by_group: dict[int, list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        by_group[entry.group_id].append(entry)
    now = timezone.now()
    month = month_start(timezone.localdate(now))
    written = 0
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        for group_id in sorted(by_group):
            ensure_group_allowed(Group(pk=group_id))
            group_entries = sorted(by_group[group_id], key=lambda e: e.id)
            cursor.execute(
                _INSERT_CALLS.format(rows=", ".join([_CALL_ROW] * len(group_entries))),
                [value for e in group_entries for value in _values(e, created_at=now)],
            )
            inserted = {row[0] for row in cursor.fetchall()}
            new = [e for e in group_entries if e.id in inserted]
            if new:
                cost = sum((e.cost for e in new), Decimal(0))
                tokens = sum(e.usage.input_tokens + e.usage.output_tokens for e in new)
                _add_to_month(cursor, group_id, month, cost=cost, tokens=tokens, calls=len(new))
            if settle:
                cursor.execute(_SETTLE, [group_id, settle])
            written += len(new)
    return written


def _add_to_month(
    cursor, group_id: int, month: date, *, cost: Decimal, tokens: int, calls: int
) -> None:
    """Add to the group's month row (taking its lock), creating the row first if it is missing."""
    params = [cost, tokens, calls, group_id, month]
    cursor.execute(_ADD_TO_MONTH, params)
    if cursor.rowcount == 0:
        cursor.execute(_CREATE_MONTH, [group_id, month])
        cursor.execute(_ADD_TO_MONTH, params)


def _values(e: LedgerEntry, *, created_at) -> tuple:
    """The entry's ledger row, in the order of _INSERT_CALLS' columns."""
    usage, prices = e.usage, e.prices
    return (
        e.id,
        e.group_id,
        e.user_id,
        e.agent_id,
        e.thread_id,
        e.run_id,
        e.purpose,
        e.provider,
        e.model,
        e.step,
        e.attempt,
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_tokens,
        usage.exact,
        prices.input,
        prices.output,
        prices.cached_input,
        e.cost,
        e.latency_ms,
        e.ttft_ms,
        e.status,
        e.error_code,
        created_at,
    )


# --- Budgets ---------------------------------------------------------------------------


def ensure_agent_capacity(group: Group) -> None:
    """Refuse a new agent when the group's plan allows no more (archived ones do not count).

    Registered for every agent created (ontology.services.register_creation_check)."""
    limit = plan_for(group).max_agents
    if limit is None:
        return
    with group_scope(group):
        agents = (
            Thing.objects.filter(type=Thing.Type.AGENT)
            .exclude(status=Thing.Status.ARCHIVED)
            .count()
        )
    if agents >= limit:
        raise ValidationError(
            {
                "name": f"{group} already has {agents} agents, the most its plan allows "
                f"({limit}). Archive one or move to a larger plan first."
            }
        )


class QuotaExceeded(Exception):
    """The group's monthly budget is used up; no provider call may start."""

    code = ErrorCode.QUOTA_EXCEEDED

    def __init__(self, status: BudgetStatus) -> None:
        self.status = status
        super().__init__(
            f"The monthly AI budget is used up; it renews on {status.resets_on:%d %B %Y}."
        )


def _refusal(*, group: Group, user: User | None, status: BudgetStatus, **metadata: Any) -> None:
    with group_scope(group):
        event_record(
            group=group,
            type=EventType.QUOTA_EXCEEDED,
            actor=user,
            metadata={
                "month": f"{status.month:%Y-%m}",
                "spent": str(status.spent),
                "held": str(status.held),
                "tokens": status.tokens,
                "budget": None if status.budget is None else str(status.budget),
                "token_budget": status.token_budget,
                **metadata,
            },
        )


def budget_reserve(
    *,
    group: Group,
    cost: Decimal,
    tokens: int,
    user: User | None = None,
    run_id: uuid.UUID | None = None,
    purpose: str = "chat",
) -> uuid.UUID | None:
    """Hold a call's worst case against the month's budget; its id, or raise QuotaExceeded
    (audited as `quota.exceeded` with the refused call's purpose: chat, title, embedding).

    None when the plan has no budget (nothing is held). Settle the reservation with
    `ai_calls_record(..., settle=[reservation_id])` when the call ends, whatever its
    end; `budget_release` when the call was never made.
    """
    ensure_group_allowed(group)
    now = timezone.now()
    month = month_start(timezone.localdate(now))
    with transaction.atomic(), connection.cursor() as cursor:
        spent, spent_tokens, plan_id, budget, token_budget = _lock_month(
            cursor, group.pk, month, query=_SELECT_MONTH_AND_PLAN, params=(group.plan,)
        )
        if plan_id is None:
            defaults = plan_defaults(group.plan)
            budget, token_budget = defaults["monthly_budget"], defaults["monthly_token_budget"]
        if budget is None and token_budget is None:
            return None
        cursor.execute(
            _RESERVE_IF_UNDER,
            {
                "id": uuid.uuid4(),
                "group": group.pk,
                "run": run_id,
                "cost": cost,
                "tokens": tokens,
                "now": now,
                "expires": now + timedelta(seconds=settings.PARLEY_BUDGET_RESERVATION_TTL),
                "budget": budget,
                "token_budget": token_budget,
                "spent": spent,
                "spent_tokens": spent_tokens,
            },
        )
        reserved = cursor.fetchone()
        if reserved is not None:
            return reserved[0]
        cursor.execute(_HELD, [group.pk, now])
        held, held_tokens = cursor.fetchone()
        status = BudgetStatus(
            month=month,
            spent=spent,
            tokens=spent_tokens,
            budget=budget,
            token_budget=token_budget,
            held=held,
            held_tokens=held_tokens,
        )
        _refusal(
            group=group,
            user=user,
            status=status,
            run_id=str(run_id or ""),
            wanted=str(cost),
            purpose=purpose,
        )
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

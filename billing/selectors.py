"""Read paths for billing: plans, budgets, usage reports and statements.

Usage for a period is read from the daily roll-ups for the days they cover and
from the ledger for every other day (today, or a day the roll-up job has not
reached yet), so a report is always complete and always agrees with the ledger.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from time import monotonic as time_now

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from billing.models import AICall, BudgetReservation, MonthlyUsage, Plan, RolledUpDay, UsageDaily
from ontology.models import Group, Membership, Thing, User
from ontology.scoping import scopes_disabled

CENT = Decimal("0.01")
ZERO = Decimal(0)


# --- Plans and budgets ---------------------------------------------------------------


def plan_for(group: Group) -> Plan:
    """The group's plan: its row, else an unsaved one with the settings' defaults.

    Knowledge uploads read `plan_for(group).max_upload_bytes`; agent creation reads
    `max_agents`; the chat reads the message rates; the budget
    (billing.services.budget_reserve) reads the same row with plain SQL.
    """
    plan = Plan.objects.filter(code=group.plan).first()
    return plan if plan is not None else Plan(code=group.plan, **plan_defaults(group.plan))


_plans: dict[str, tuple[float, Plan]] = {}


def current_plan(group: Group) -> Plan:
    """plan_for, kept per process for PARLEY_PLAN_CACHE_SECONDS: every message reads its
    plan's rates. A plan saved in this process is read afresh at once (billing.apps); one
    saved in another process applies here within those seconds."""
    now = time_now()
    cached = _plans.get(group.plan)
    if cached is not None and cached[0] > now:
        return cached[1]
    plan = plan_for(group)
    _plans[group.plan] = (now + settings.PARLEY_PLAN_CACHE_SECONDS, plan)
    return plan


def cached_plan(group: Group) -> Plan | None:
    """The group's plan if this process read it in the last few seconds, else None (no I/O)."""
    cached = _plans.get(group.plan)
    return cached[1] if cached is not None and cached[0] > time_now() else None


def forget_plans(**kwargs) -> None:
    _plans.clear()


def plan_defaults(code: str) -> dict:
    """settings.PARLEY_PLAN_DEFAULTS for a plan that has no row."""
    return settings.PARLEY_PLAN_DEFAULTS.get(code) or settings.PARLEY_PLAN_DEFAULTS["free"]


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """The aware instants from the start of `first` to the start of the day after `last`."""
    tz = timezone.get_current_timezone()
    start = datetime.combine(first, time.min, tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz)
    return start, end


def held_reservations(*, group: Group, now: datetime | None = None) -> tuple[Decimal, int]:
    """Cost and tokens held by the group's calls in flight; expired reservations hold nothing."""
    totals = BudgetReservation.objects.filter(
        group=group, expires_at__gt=now or timezone.now()
    ).aggregate(cost=Sum("cost"), tokens=Sum("tokens"))
    return totals["cost"] or ZERO, totals["tokens"] or 0


@dataclass(frozen=True)
class BudgetStatus:
    month: date
    spent: Decimal
    tokens: int
    budget: Decimal | None
    token_budget: int | None
    held: Decimal = ZERO
    held_tokens: int = 0

    @property
    def share(self) -> float:
        """The larger of the cost and token shares of the budget used (0 when unlimited)."""
        shares = []
        if self.budget is not None:
            shares.append(float(self.spent / self.budget) if self.budget else 1.0)
        if self.token_budget is not None:
            shares.append(self.tokens / self.token_budget if self.token_budget else 1.0)
        return max(shares, default=0.0)

    @property
    def percent(self) -> int:
        return int(self.share * 100)

    @property
    def warning(self) -> bool:
        return self.share >= settings.PARLEY_BUDGET_WARNING_SHARE

    @property
    def exhausted(self) -> bool:
        return self.share >= 1

    @property
    def resets_on(self) -> date:
        return next_month(self.month)

    def over_with_held(self) -> bool:
        """True when what is spent plus what is in flight reaches a limit: refuse new calls."""
        if self.budget is not None and self.spent + self.held >= self.budget:
            return True
        return self.token_budget is not None and self.tokens + self.held_tokens >= self.token_budget


def budget_status(
    *, group: Group, plan: Plan | None = None, with_held: bool = False
) -> BudgetStatus:
    plan = plan or plan_for(group)
    now = timezone.now()
    month = month_start(timezone.localdate(now))
    row = MonthlyUsage.objects.filter(group=group, month=month).first()
    held, held_tokens = held_reservations(group=group, now=now) if with_held else (ZERO, 0)
    return BudgetStatus(
        month=month,
        spent=row.cost if row else ZERO,
        tokens=row.tokens if row else 0,
        budget=plan.monthly_budget,
        token_budget=plan.monthly_token_budget,
        held=held,
        held_tokens=held_tokens,
    )


# --- Usage reports ---------------------------------------------------------------------

DIMENSIONS = ("day", "provider", "model", "agent_id", "user_id")
SUMS = ("calls", "failed_calls", "input_tokens", "output_tokens", "cached_tokens", "cost")


@dataclass
class Totals:
    calls: int = 0
    failed_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: Decimal = ZERO

    def add(self, row: dict) -> None:
        for name in SUMS:
            setattr(self, name, getattr(self, name) + (row[name] or 0))

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def cost_cents(self) -> Decimal:
        return self.cost.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class Line:
    key: object
    label: str
    totals: Totals = field(default_factory=Totals)


@dataclass
class UsageBreakdown:
    start: date
    end: date
    totals: Totals
    by_day: list[Line]
    by_model: list[Line]
    by_agent: list[Line]
    by_user: list[Line]


def _contiguous(days: list[date]) -> Iterable[tuple[date, date]]:
    run: list[date] = []
    for day in sorted(days):
        if run and day != run[-1] + timedelta(days=1):
            yield run[0], run[-1]
            run = []
        run.append(day)
    if run:
        yield run[0], run[-1]


def _ledger_rows(calls: QuerySet[AICall], days: list[date], dims: tuple[str, ...]) -> list[dict]:
    """The ledger summed per day and dimension, for the given days only."""
    if not days:
        return []
    when = Q()
    for first, last in _contiguous(days):
        start, end = day_bounds(first, last)
        when |= Q(created_at__gte=start, created_at__lt=end)
    return list(
        calls.filter(when)
        .annotate(day=TruncDate("created_at"))
        .values(*dims)
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


def usage_rows(*, group: Group | None, start: date, end: date) -> list[dict]:
    """Usage per (day, provider, model, agent, user) from `start` to `end` inclusive.

    `group=None` is the whole platform, for superusers: it reads with scopes
    disabled and each row also carries its `group_id`.
    """
    today = timezone.localdate()
    end = min(end, today)
    if end < start:
        return []
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    rolled = set(
        RolledUpDay.objects.filter(day__in=days, day__lt=today).values_list("day", flat=True)
    )
    live = [d for d in days if d not in rolled]
    if group is None:
        dims = ("group_id", *DIMENSIONS)
        with scopes_disabled():
            rollups = list(UsageDaily.objects.filter(day__in=rolled).values(*dims, *SUMS))
            return rollups + _ledger_rows(AICall.objects.all(), live, dims)
    rollups = list(
        UsageDaily.objects.filter(group=group, day__in=rolled).values(*DIMENSIONS, *SUMS)
    )
    return rollups + _ledger_rows(AICall.objects.filter(group=group), live, DIMENSIONS)


def usage_report(*, group: Group, start: date, end: date) -> UsageBreakdown:
    rows = usage_rows(group=group, start=start, end=end)
    totals = Totals()
    by_day: dict[date, Line] = {}
    day = start
    while day <= end:
        by_day[day] = Line(day, day.strftime("%d %b"))
        day += timedelta(days=1)
    by_model: dict[tuple[str, str], Line] = {}
    by_agent: dict[int | None, Line] = {}
    by_user: dict[int | None, Line] = {}
    for row in rows:
        totals.add(row)
        by_day[row["day"]].totals.add(row)
        model_key = (row["provider"], row["model"])
        by_model.setdefault(model_key, Line(model_key, f"{row['model']} ({row['provider']})"))
        by_model[model_key].totals.add(row)
        by_agent.setdefault(row["agent_id"], Line(row["agent_id"], ""))
        by_agent[row["agent_id"]].totals.add(row)
        by_user.setdefault(row["user_id"], Line(row["user_id"], ""))
        by_user[row["user_id"]].totals.add(row)
    agent_names = dict(
        Thing.objects.filter(group=group, pk__in=[k for k in by_agent if k]).values_list(
            "pk", "name"
        )
    )
    for key, line in by_agent.items():
        line.label = agent_names.get(key, "Deleted agent") if key else "No agent"
    user_names = {u.pk: str(u) for u in User.objects.filter(pk__in=[k for k in by_user if k])}
    for key, line in by_user.items():
        line.label = user_names.get(key, "Deleted user") if key else "The platform"

    def ranked(lines: dict) -> list[Line]:
        return sorted(lines.values(), key=lambda line: (-line.totals.cost, line.label))

    return UsageBreakdown(
        start=start,
        end=end,
        totals=totals,
        by_day=list(by_day.values()),
        by_model=ranked(by_model),
        by_agent=ranked(by_agent),
        by_user=ranked(by_user),
    )


@dataclass
class TenantUsage:
    group: Group
    totals: Totals
    budget: Decimal | None


def platform_usage(*, start: date, end: date) -> tuple[list[TenantUsage], Totals]:
    """Every tenant's usage in the period and the platform total (superusers only)."""
    per_group: dict[int, Totals] = defaultdict(Totals)
    platform = Totals()
    for row in usage_rows(group=None, start=start, end=end):
        per_group[row["group_id"]].add(row)
        platform.add(row)
    plans = {p.code: p for p in Plan.objects.all()}
    tenants = []
    for group in Group.objects.order_by("name"):
        plan = plans.get(group.plan) or plan_for(group)
        tenants.append(TenantUsage(group, per_group.get(group.pk, Totals()), plan.monthly_budget))
    tenants.sort(key=lambda t: (-t.totals.cost, t.group.name))
    return tenants, platform


def calls_for(
    *,
    group: Group,
    start: date,
    end: date,
    model: str = "",
    agent_id: int | None = None,
    user_id: int | None = None,
    status: str = "",
) -> QuerySet[AICall]:
    """The ledger rows of the period, newest first, narrowed by the filters given."""
    first, last = day_bounds(start, end)
    calls = AICall.objects.filter(group=group, created_at__gte=first, created_at__lt=last)
    if model:
        calls = calls.filter(model=model)
    if agent_id:
        calls = calls.filter(agent_id=agent_id)
    if user_id:
        calls = calls.filter(user_id=user_id)
    if status:
        calls = calls.filter(status=status)
    return calls.select_related("agent", "user").order_by("-created_at", "-id")


def ledger_models(*, group: Group) -> list[str]:
    """Each model the group's ledger names, once, in order. The ledger's default ordering
    (newest first) would make DISTINCT keep one row per call, so it is replaced."""
    return list(
        AICall.objects.filter(group=group)
        .order_by("model")
        .values_list("model", flat=True)
        .distinct()
    )


def group_members(*, group: Group) -> QuerySet[User]:
    return User.objects.filter(
        pk__in=Membership.objects.filter(group=group).values_list("user_id", flat=True)
    ).order_by("username")


# --- Monthly statement -------------------------------------------------------------------


@dataclass
class Statement:
    group: Group
    month: date
    period_start: date
    period_end: date
    lines: list[Line]
    totals: Totals

    @property
    def amount_due(self) -> Decimal:
        """The exact total rounded once, to the cent (never the sum of rounded lines)."""
        return self.totals.cost_cents


def monthly_statement(*, group: Group, month: date) -> Statement:
    first = month_start(month)
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    report = usage_report(group=group, start=first, end=last)
    lines = sorted(report.by_model, key=lambda line: line.key)
    return Statement(group, first, first, last, lines, report.totals)

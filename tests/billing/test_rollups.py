"""Daily roll-ups equal the ledger, however often they run; reports and statements agree."""

import csv
import io
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db.models import Count, Sum
from django.urls import reverse
from django.utils import timezone

from billing import tasks
from billing.models import AICall, RolledUpDay, UsageDaily
from billing.selectors import day_bounds, month_start, monthly_statement, usage_report
from billing.services import usage_rollup_day
from config.celery import app
from ontology.scoping import group_scope, scopes_disabled
from tests.billing.conftest import record_on, spend

pytestmark = pytest.mark.django_db

SUMS = ("input_tokens", "output_tokens", "cached_tokens", "cost")


def ledger_by_day(day):
    start, end = day_bounds(day, day)
    with scopes_disabled():
        return {
            (r["group_id"], r["model"], r["user_id"]): r
            for r in AICall.objects.filter(created_at__gte=start, created_at__lt=end)
            .values("group_id", "model", "user_id")
            .annotate(calls=Count("id"), **{name: Sum(name) for name in SUMS})
        }


def rollups_by_day(day):
    with scopes_disabled():
        return {
            (r["group_id"], r["model"], r["user_id"]): r
            for r in UsageDaily.objects.filter(day=day)
            .values("group_id", "model", "user_id")
            .annotate(calls=Sum("calls"), **{name: Sum(name) for name in SUMS})
        }


@pytest.fixture
def history(tenant_a, tenant_b):
    """Three past days and today, two tenants, two models, two people."""
    today = timezone.localdate()
    days = [today - timedelta(days=n) for n in (3, 2, 1)]
    for n, day in enumerate(days):
        for tenant in (tenant_a, tenant_b):
            record_on(
                day,
                tenant.group,
                input_tokens=100 + n,
                output_tokens=7,
                cached_tokens=3,
                user=tenant.member,
                agent=tenant.agent,
            )
            record_on(
                day,
                tenant.group,
                input_tokens=11,
                model="sim-claude",
                provider="simulator-anthropic",
                user=tenant.owner,
            )
            record_on(day, tenant.group, input_tokens=5, status="failed", user=tenant.owner)
    spend(tenant_a.group, "0.123", user=tenant_a.member)  # today: only the ledger has it
    return days


def test_roll_ups_equal_the_ledger_after_any_number_of_runs(history, tenant_a):
    for _ in range(2):
        for day in history:
            usage_rollup_day(day=day)
    for day in history:
        assert rollups_by_day(day) == ledger_by_day(day)
        assert RolledUpDay.objects.get(day=day).calls == 6

    # A late row for a past day: the next run picks it up and the totals still agree.
    record_on(history[0], tenant_a.group, input_tokens=999)
    usage_rollup_day(day=history[0])
    assert rollups_by_day(history[0]) == ledger_by_day(history[0])
    with scopes_disabled():
        assert UsageDaily.objects.filter(day=history[0]).count() == 7


def test_today_cannot_be_rolled_up():
    with pytest.raises(ValueError, match="complete days"):
        usage_rollup_day(day=timezone.localdate())


def test_the_beat_job_rolls_up_the_recent_days_and_its_tasks_exist(history, settings):
    settings.PARLEY_ROLLUP_DAYS = 3
    done = tasks.usage_rollup_recent()
    assert done == [day.isoformat() for day in history]
    for day in history:
        assert rollups_by_day(day) == ledger_by_day(day)
    app.loader.import_default_modules()
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks


def test_reports_read_roll_ups_for_past_days_and_the_ledger_for_today(history, tenant_a):
    for day in history:
        usage_rollup_day(day=day)
    # Written after the roll-up and never rolled up again: past days show the roll-up.
    record_on(history[1], tenant_a.group, input_tokens=5000)
    with group_scope(tenant_a.group):
        report = usage_report(group=tenant_a.group, start=history[0], end=timezone.localdate())
    by_day = {line.key: line.totals for line in report.by_day}
    assert by_day[history[1]].input_tokens == 101 + 11 + 5
    assert by_day[timezone.localdate()].cost == Decimal("0.123")
    assert report.totals.calls == 3 * 3 + 1
    models = {line.key: line.totals.calls for line in report.by_model}
    assert models == {("simulator", "sim-gpt"): 7, ("simulator-anthropic", "sim-claude"): 3}
    people = {line.label: line.totals.calls for line in report.by_user}
    assert people == {str(tenant_a.member): 4, str(tenant_a.owner): 6}
    agents = {line.label for line in report.by_agent}
    assert agents == {tenant_a.agent.name, "No agent"}


def test_a_day_without_a_roll_up_is_read_from_the_ledger(history, tenant_a):
    with group_scope(tenant_a.group):
        report = usage_report(group=tenant_a.group, start=history[0], end=history[-1])
        ledger = AICall.objects.filter(created_at__lt=day_bounds(history[-1], history[-1])[1])
        assert report.totals.cost == ledger.aggregate(total=Sum("cost"))["total"]


def test_the_monthly_statement_total_is_the_ledger_sum_to_the_cent(client, tenant_a, tenant_b):
    today = timezone.localdate()
    first = month_start(today)
    for n in range((today - first).days + 1):
        day = first + timedelta(days=n)
        record_on(day, tenant_a.group, input_tokens=333, output_tokens=17, cached_tokens=100)
        record_on(
            day, tenant_a.group, input_tokens=7, model="sim-claude", provider="simulator-anthropic"
        )
        record_on(day, tenant_b.group, input_tokens=1000)
        if day < today:
            usage_rollup_day(day=day)
    with group_scope(tenant_a.group):
        exact = AICall.objects.aggregate(total=Sum("cost"))["total"]
        statement = monthly_statement(group=tenant_a.group, month=today)
    assert statement.totals.cost == exact
    assert sum(line.totals.cost for line in statement.lines) == exact
    assert statement.amount_due == exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

    client.force_login(tenant_a.owner)
    response = client.get(reverse("billing:statement-csv"), {"month": f"{today:%Y-%m}"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[2] == ["Period", first.isoformat(), statement.period_end.isoformat()]
    header = rows.index(
        [
            "Provider",
            "Model",
            "Calls",
            "Input tokens",
            "Cached input tokens",
            "Output tokens",
            "Cost",
        ]
    )
    total_row = next(r for r in rows if r and r[0] == "Total")
    lines = rows[header + 1 : rows.index(total_row)]
    assert {(r[0], r[1]) for r in lines} == {
        ("simulator", "sim-gpt"),
        ("simulator-anthropic", "sim-claude"),
    }
    assert sum(Decimal(r[6]) for r in lines) == Decimal(total_row[6]) == exact
    due = next(r for r in rows if r and r[0] == "Amount due")
    assert Decimal(due[6]) == statement.amount_due

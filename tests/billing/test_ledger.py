"""The ledger write (billing.services.ai_calls_record): few statements, and never a charge twice."""

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import AICall, BudgetReservation, MonthlyUsage
from billing.services import Usage, ai_calls_record, budget_reserve
from ontology.scoping import group_scope
from tests.billing.conftest import PRICES, entry, spend
from tests.conftest import set_plan

pytestmark = pytest.mark.django_db(transaction=True)


def statements(queries: CaptureQueriesContext) -> list[str]:
    """Each statement as its verb and table, e.g. "UPDATE billing_monthlyusage"; the
    transaction's own (BEGIN, COMMIT, SAVEPOINT ...) as their verb."""
    shapes = []
    for query in queries.captured_queries:
        words = query["sql"].split()
        verb = words[0].upper()
        if verb == "INSERT":
            verb += " " + words[words.index("INTO") + 1]
        elif verb == "UPDATE":
            verb += " " + words[1]
        elif verb == "DELETE":
            verb += " " + words[words.index("FROM") + 1]
        shapes.append(verb)
    return shapes


def month(group) -> MonthlyUsage:
    with group_scope(group):
        return MonthlyUsage.objects.get()


def held(group) -> set:
    with group_scope(group):
        return set(BudgetReservation.objects.values_list("pk", flat=True))


def test_a_turns_call_is_written_counted_and_settled_in_three_statements(tenant_a):
    """The row, the month's total (which takes the month's lock) and the settled hold: no
    lock taken first and no look for the row beforehand; inside the caller's transaction (a
    turn's answer), with no savepoint of its own."""
    set_plan("free", monthly_budget=Decimal("100"))
    spend(tenant_a.group, "0.010")  # the month's row exists, as it does after a first call
    reservation = budget_reserve(group=tenant_a.group, cost=Decimal("0.5"), tokens=500)
    call = entry(tenant_a.group, input_tokens=300, output_tokens=20)

    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        assert ai_calls_record(entries=[call], settle=[reservation]) == 1

    assert statements(queries) == [
        "BEGIN",
        "INSERT billing_aicall",
        "UPDATE billing_monthlyusage",
        "DELETE billing_budgetreservation",
        "COMMIT",
    ]
    usage = month(tenant_a.group)
    assert (usage.cost, usage.tokens, usage.calls) == (Decimal("0.35"), 330, 2)
    assert held(tenant_a.group) == set()


def test_the_months_first_call_creates_its_row_then_counts_in_it(tenant_a):
    with CaptureQueriesContext(connection) as queries:
        assert ai_calls_record(entries=[entry(tenant_a.group, input_tokens=40)]) == 1

    assert statements(queries) == [
        "BEGIN",
        "INSERT billing_aicall",
        "UPDATE billing_monthlyusage",  # no row yet: nothing updated
        "INSERT billing_monthlyusage",
        "UPDATE billing_monthlyusage",
        "COMMIT",
    ]
    usage = month(tenant_a.group)
    assert (usage.cost, usage.tokens, usage.calls) == (Decimal("0.04"), 40, 1)


def test_a_replayed_entry_is_neither_inserted_nor_counted_but_its_hold_is_settled(tenant_a):
    set_plan("free", monthly_budget=Decimal("100"))
    first = entry(tenant_a.group, input_tokens=250)
    assert ai_calls_record(entries=[first]) == 1
    before = month(tenant_a.group)

    # The same call written again (a retried write), even with other numbers: it was written.
    replay = dataclasses.replace(first, usage=Usage(input_tokens=9000, output_tokens=900))
    reservation = budget_reserve(group=tenant_a.group, cost=Decimal("0.5"), tokens=500)
    with CaptureQueriesContext(connection) as queries:
        assert ai_calls_record(entries=[replay], settle=[reservation]) == 0

    assert statements(queries) == [
        "BEGIN",
        "INSERT billing_aicall",  # it inserts nothing, so the month is not touched
        "DELETE billing_budgetreservation",
        "COMMIT",
    ]
    after = month(tenant_a.group)
    assert (after.cost, after.tokens, after.calls) == (before.cost, before.tokens, before.calls)
    with group_scope(tenant_a.group):
        (row,) = AICall.objects.all()
    assert (row.input_tokens, row.output_tokens, row.cost) == (250, 0, Decimal("0.25"))
    assert held(tenant_a.group) == set()

    # With a new call beside it, only the new one counts.
    new = entry(tenant_a.group, input_tokens=0, output_tokens=7)
    assert ai_calls_record(entries=[replay, new]) == 1
    usage = month(tenant_a.group)
    assert (usage.cost, usage.tokens, usage.calls) == (Decimal("0.264"), 257, 2)


def test_the_row_holds_the_entry_exactly(tenant_a):
    call = dataclasses.replace(
        entry(tenant_a.group, input_tokens=1234, output_tokens=56, cached_tokens=1000),
        user_id=tenant_a.member.pk,
        agent_id=tenant_a.agent.pk,
        purpose=AICall.Purpose.TITLE,
        step=2,
        attempt=1,
        usage=Usage(1234, 56, 1000, exact=False),
        ttft_ms=None,
        status=AICall.Status.FAILED,
        error_code="rate_limited",
    )
    started = timezone.now()
    ai_calls_record(entries=[call])

    with group_scope(tenant_a.group):
        row = AICall.objects.get()
    assert started <= row.created_at <= timezone.now()
    assert (row.id, row.group_id, row.user_id, row.agent_id, row.thread_id, row.run_id) == (
        call.id,
        tenant_a.group.pk,
        tenant_a.member.pk,
        tenant_a.agent.pk,
        None,
        call.run_id,
    )
    assert (row.purpose, row.provider, row.model, row.step, row.attempt) == (
        "title",
        "simulator",
        "sim-gpt",
        2,
        1,
    )
    assert (row.input_tokens, row.output_tokens, row.cached_tokens, row.usage_exact) == (
        1234,
        56,
        1000,
        False,
    )
    assert (row.input_price, row.output_price, row.cached_price) == (
        PRICES.input,
        PRICES.output,
        PRICES.cached_input,
    )
    # 234 input at $1000, 1000 cached at $500, 56 output at $2000 per million tokens.
    assert row.cost == call.cost == Decimal("0.846")
    assert (row.latency_ms, row.ttft_ms, row.status, row.error_code) == (
        120,
        None,
        "failed",
        "rate_limited",
    )


def test_writers_racing_with_the_same_calls_count_each_call_once(tenant_a):
    """Eight connections write the same two calls at the same instant, in either order: each
    row is inserted by one of them and counted once, and nobody deadlocks."""
    parties = 8
    calls = [entry(tenant_a.group, input_tokens=100), entry(tenant_a.group, input_tokens=200)]
    spend(tenant_a.group, "0.001")
    start = threading.Barrier(parties)

    def write(index: int) -> int:
        try:
            connection.ensure_connection()
            start.wait(timeout=30)
            return ai_calls_record(entries=calls if index % 2 else calls[::-1])
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=parties) as pool:
        written = list(pool.map(write, range(parties)))

    assert sum(written) == 2
    usage = month(tenant_a.group)
    assert (usage.cost, usage.tokens, usage.calls) == (Decimal("0.301"), 301, 3)

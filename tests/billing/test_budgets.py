"""Budgets are reserve-then-settle: refused before any provider call, never overshot by more
than one reservation, settled to the real usage, released on failure, expired after a crash."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.engine import AgentRun
from billing.models import AICall, BudgetReservation, MonthlyUsage
from billing.selectors import budget_status, current_plan
from billing.services import QuotaExceeded, ai_calls_record, budget_reserve
from chat import services as chat_services
from chat.conversation import ThreadConversation
from chat.models import Message
from chat.titles import propose_title
from ontology import services
from ontology.models import Event, Thing
from ontology.scoping import group_scope
from tests.agents.conftest import Recorder
from tests.billing.conftest import entry, spend
from tests.conftest import make_tenant, set_plan

pytestmark = pytest.mark.django_db(transaction=True)


def month_row(group) -> MonthlyUsage:
    with group_scope(group):
        return MonthlyUsage.objects.get()


def ledger_sum(group) -> Decimal:
    with group_scope(group):
        return AICall.objects.aggregate(total=Sum("cost"))["total"] or Decimal(0)


def open_reservations(group) -> int:
    with group_scope(group):
        return BudgetReservation.objects.count()


def chat(slug: str, model: str, count: int = 1, max_tokens: int = 1024, **properties):
    """A tenant whose agent answers with the simulator, and `count` threads with a question."""
    tenant = make_tenant(slug)
    agent = services.thing_create(
        group=tenant.group,
        type=Thing.Type.AGENT,
        name="Budget agent",
        actor=tenant.owner,
        properties={
            "provider": "simulator",
            "model": model,
            "maxTokens": max_tokens,
            **properties,
        },
    )
    threads = []
    with group_scope(tenant.group):
        for _ in range(count):
            thread = chat_services.thread_create(
                group=tenant.group, agent=agent, user=tenant.member
            )
            chat_services.message_create_user(thread=thread, user=tenant.member, content="Hello?")
            threads.append(thread)
    return tenant, threads


async def run(tenant, thread):
    sink = Recorder()
    conversation = ThreadConversation(group=tenant.group, thread=thread)
    result = await AgentRun(
        group=tenant.group, conversation=conversation, user=tenant.member, sink=sink
    ).execute()
    return result, sink


# --- the ledger keeps the month's total --------------------------------------------------------


def test_the_month_total_is_the_ledger_sum_and_a_replay_adds_nothing(tenant_a):
    first, second = (
        entry(tenant_a.group, input_tokens=250),
        entry(tenant_a.group, input_tokens=0, output_tokens=7),
    )
    assert ai_calls_record(entries=[first]) == 1
    assert ai_calls_record(entries=[first, second]) == 1  # the replayed row is skipped
    assert ai_calls_record(entries=[first, second]) == 0
    usage = month_row(tenant_a.group)
    assert usage.cost == ledger_sum(tenant_a.group) == Decimal("0.264")
    assert (usage.tokens, usage.calls) == (257, 2)


# --- refusal before any provider call ------------------------------------------------------------


@database_sync_to_async
def use_it_all(group) -> None:
    set_plan("free", monthly_budget=Decimal("1.00"))
    spend(group, "1.000")


@database_sync_to_async
def refusals(group) -> list[tuple[int, str]]:
    """The audit's quota.exceeded events: who was refused, and the refused call's purpose."""
    with group_scope(group):
        return list(
            Event.objects.filter(type="quota.exceeded").values_list("actor_id", "metadata__purpose")
        )


async def test_a_group_over_budget_is_refused_before_the_provider_is_called(sim):
    tenant, (thread,) = await database_sync_to_async(chat)("spent", "sim-gpt@text")

    await use_it_all(tenant.group)
    sim.clear()
    result, sink = await run(tenant, thread)

    assert sim.request_log == [] and sim.usage_log == []
    assert result.error_code == "quota_exceeded"
    (error,) = sink.of("error")
    assert error["code"] == "quota_exceeded"
    assert "budget" in error["message"] and "month" in error["message"]

    @database_sync_to_async
    def recorded():
        with group_scope(tenant.group):
            return (
                AICall.objects.count(),
                list(
                    Message.objects.filter(role=Message.Role.ASSISTANT).values_list(
                        "status", "error_code"
                    )
                ),
            )

    calls, answers = await recorded()
    assert calls == 1  # only the spending row above: no call was made for this run
    # The audit says who was refused, and which call.
    assert await refusals(tenant.group) == [(tenant.member.pk, "chat")]
    assert answers == [(Message.Status.ERROR, "quota_exceeded")]


async def test_over_the_budget_a_title_is_the_question_and_no_call_is_made(sim):
    tenant, (thread,) = await database_sync_to_async(chat)("titles", "sim-gpt@text;words=5")
    result, _ = await run(tenant, thread)
    assert result.status == Message.Status.COMPLETE

    await use_it_all(tenant.group)
    sim.clear()
    title = await propose_title(group=tenant.group, thread=thread, user=tenant.member)
    assert title == "Hello?" and sim.request_log == []

    assert await refusals(tenant.group) == [(tenant.member.pk, "title")]


async def test_a_run_settles_its_reservation_to_the_real_cost(sim):
    tenant, (thread,) = await database_sync_to_async(chat)("settle", "sim-gpt@text;words=30")
    result, _ = await run(tenant, thread)
    assert result.status == "complete"

    @database_sync_to_async
    def state():
        return open_reservations(tenant.group), month_row(tenant.group), ledger_sum(tenant.group)

    held, usage, total = await state()
    assert held == 0
    assert usage.cost == total == result.cost > 0
    assert usage.tokens == result.input_tokens + result.output_tokens


async def test_a_turns_last_call_is_written_in_the_answers_own_transaction(sim):
    """The row of the call that ends a turn, its settled hold and the finished answer commit
    together (PostgreSQL's xmin names the transaction that wrote a row): one trip to the
    database for all three, and never an answer without its cost or the reverse."""
    tenant, (thread,) = await database_sync_to_async(chat)("one-write", "sim-gpt@text;words=12")
    result, _ = await run(tenant, thread)
    assert result.status == "complete"

    @database_sync_to_async
    def writers():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT xmin::text FROM billing_aicall WHERE run_id = %s", [result.run_id]
            )
            calls = [row[0] for row in cursor.fetchall()]
            cursor.execute("SELECT xmin::text FROM chat_message WHERE id = %s", [result.message_id])
            (answer,) = cursor.fetchone()
        return calls, answer, open_reservations(tenant.group)

    calls, answer, held = await writers()
    assert calls == [answer]
    assert held == 0


async def test_failed_calls_release_their_reservation_and_count_what_they_used(sim):
    tenant, (thread,) = await database_sync_to_async(chat)("failing", "sim-gpt@server_error")
    result, _ = await run(tenant, thread)
    assert result.status == "error" and result.error_code == "provider_unavailable"

    @database_sync_to_async
    def state():
        with group_scope(tenant.group):
            statuses = set(AICall.objects.values_list("status", flat=True))
        return open_reservations(tenant.group), statuses, month_row(tenant.group)

    held, statuses, usage = await state()
    assert held == 0
    assert statuses == {AICall.Status.FAILED}
    assert usage.calls >= 2  # retries are calls too, each reserved and settled
    assert usage.cost == Decimal(0)


async def test_stopped_calls_count_against_the_budget(sim):
    tenant, (thread,) = await database_sync_to_async(chat)(
        "stopped", "sim-gpt@slow;ttft_ms=0;tps=50;words=400"
    )
    sink = Recorder()
    conversation = ThreadConversation(group=tenant.group, thread=thread)
    agent_run = AgentRun(
        group=tenant.group, conversation=conversation, user=tenant.member, sink=sink
    )
    task = asyncio.create_task(agent_run.execute())
    await asyncio.wait_for(sink.first_delta.wait(), timeout=10)
    agent_run.stop()
    result = await task
    assert result.status == "stopped"

    @database_sync_to_async
    def state():
        with group_scope(tenant.group):
            row = AICall.objects.get()
        return row, month_row(tenant.group), open_reservations(tenant.group)

    row, usage, held = await state()
    assert row.status == AICall.Status.STOPPED and row.output_tokens > 0
    assert usage.cost == row.cost > 0 and held == 0


# --- the first call's hold, made on the set-up's trip ----------------------------------------


def prepared_run(tenant, thread) -> tuple[AgentRun, Recorder]:
    """A run set up as a chat socket starts one: on its database trip (prepare_now)."""
    sink = Recorder()
    conversation = ThreadConversation(group=tenant.group, thread=thread)
    agent_run = AgentRun(
        group=tenant.group, conversation=conversation, user=tenant.member, sink=sink
    )
    agent_run.prepare_now()
    return agent_run, sink


@database_sync_to_async
def holds(tenant) -> list[tuple]:
    with group_scope(tenant.group):
        return list(BudgetReservation.objects.values_list("run_id", "tokens"))


async def test_the_first_calls_budget_is_held_on_the_set_up_trip(sim):
    """No trip of its own between run.started and the provider: the hold is made with the
    set-up, for what the call asks, and settled by the call to its real cost."""
    tenant, (thread,) = await database_sync_to_async(chat)(
        "ahead", "sim-gpt@text;words=30", max_tokens=500
    )
    agent_run, _ = await database_sync_to_async(prepared_run)(tenant, thread)
    [(run_id, tokens)] = await holds(tenant)
    assert run_id == agent_run.run_id
    assert tokens > 500  # the prompt and all the output the call may make

    result = await agent_run.execute()
    assert result.status == "complete"
    assert len(sim.request_log) == 1
    assert await holds(tenant) == []

    @database_sync_to_async
    def state():
        with group_scope(tenant.group):
            row = AICall.objects.get()
        return row, month_row(tenant.group)

    row, usage = await state()
    assert (row.run_id, row.step, row.attempt, row.status) == (result.run_id, 0, 0, "ok")
    assert usage.cost == row.cost == result.cost > 0


async def test_a_hold_made_ahead_for_a_call_never_made_is_given_back(sim):
    tenant, (thread,) = await database_sync_to_async(chat)("never", "sim-gpt@text;words=30")
    agent_run, _ = await database_sync_to_async(prepared_run)(tenant, thread)
    assert len(await holds(tenant)) == 1
    agent_run.stop()  # before its first call
    result = await agent_run.execute()
    assert result.status == "stopped"
    assert sim.request_log == []
    assert await holds(tenant) == []

    @database_sync_to_async
    def calls():
        with group_scope(tenant.group):
            return AICall.objects.count()

    assert await calls() == 0


async def test_a_refusal_on_the_set_up_trip_ends_the_run_as_the_call_would(sim):
    tenant, (thread,) = await database_sync_to_async(chat)("refused-ahead", "sim-gpt@text")
    await use_it_all(tenant.group)
    sim.clear()
    agent_run, sink = await database_sync_to_async(prepared_run)(tenant, thread)
    assert await refusals(tenant.group) == [(tenant.member.pk, "chat")]  # audited there
    result = await agent_run.execute()

    assert sim.request_log == []
    assert result.error_code == "quota_exceeded"
    assert sink.types == ["run.started", "error"]
    assert sink.of("error")[0]["code"] == "quota_exceeded"
    assert await refusals(tenant.group) == [(tenant.member.pk, "chat")]  # once
    assert await holds(tenant) == []


async def test_an_agent_that_searches_knowledge_holds_at_its_call(sim):
    """Passages found after run.started join the first call's prompt: its hold waits for it."""
    tenant, (thread,) = await database_sync_to_async(chat)(
        "searching", "sim-gpt@text;words=10", ragEnabled=True
    )
    agent_run, _ = await database_sync_to_async(prepared_run)(tenant, thread)
    assert await holds(tenant) == []
    result = await agent_run.execute()
    assert result.status == "complete"
    assert await holds(tenant) == []
    assert await database_sync_to_async(ledger_sum)(tenant.group) == result.cost > 0


async def test_a_group_without_a_budget_holds_nothing_on_the_set_up_trip(sim):
    """Its plan as the process last read it says so: the set-up takes no budget lock."""
    tenant, (thread,) = await database_sync_to_async(chat)("unbudgeted", "sim-gpt@text")

    @database_sync_to_async
    def set_up_without_budget():
        set_plan("free", monthly_budget=None, monthly_token_budget=None)
        current_plan(tenant.group)  # read by this process, as its rate limits read it
        with CaptureQueriesContext(connection) as queries:
            agent_run, _ = prepared_run(tenant, thread)
        return agent_run, [q["sql"] for q in queries]

    agent_run, statements = await set_up_without_budget()
    assert not [sql for sql in statements if "billing_monthlyusage" in sql]
    assert await holds(tenant) == []
    result = await agent_run.execute()
    assert result.status == "complete"
    assert await holds(tenant) == []


# --- concurrency: overshoot by at most one reservation ------------------------------------


async def test_fifty_concurrent_runs_overshoot_a_nearly_spent_budget_by_at_most_one_reservation(
    sim,
):
    budget = Decimal("1.00")
    tenant, threads = await database_sync_to_async(chat)(
        "burst", "sim-gpt@text;words=300", count=50
    )

    @database_sync_to_async
    def nearly_spend():
        set_plan("free", monthly_budget=budget)
        spend(tenant.group, "0.999")

    await nearly_spend()
    sim.clear()
    outcomes = await asyncio.gather(*(run(tenant, thread) for thread in threads))
    results = [result for result, _ in outcomes]

    admitted = [r for r in results if r.error_code != "quota_exceeded"]
    refused = [r for r in results if r.error_code == "quota_exceeded"]
    assert len(admitted) + len(refused) == 50 and refused
    assert len(sim.request_log) == len(admitted)  # every refusal happened before a call
    for _, sink in outcomes:
        assert [e["code"] for e in sink.of("error")] in ([], ["quota_exceeded"])

    @database_sync_to_async
    def state():
        with group_scope(tenant.group):
            largest = max(
                Event.objects.filter(type="quota.exceeded").values_list("metadata", flat=True),
                key=lambda m: Decimal(m.get("wanted", "0")),
            )
        return (
            month_row(tenant.group),
            ledger_sum(tenant.group),
            largest,
            open_reservations(tenant.group),
        )

    usage, total, _, held = await state()
    # One run's worst case: its prompt plus 1024 output tokens at sim-gpt's $1 / $4 per million.
    one_reservation = Decimal("0.005")
    overshoot = usage.cost - budget
    print(
        f"\n50 concurrent runs: {len(admitted)} admitted, {len(refused)} refused, "
        f"spent {usage.cost} of {budget} (overshoot {max(overshoot, Decimal(0))})"
    )
    assert usage.cost == total
    assert overshoot <= one_reservation
    assert held == 0


def test_reservations_are_atomic_across_database_connections(tenant_a):
    """Sixteen threads, each holding its own connection, reserve at the same instant.

    Sixteen, not fifty: the connection pool holds twenty, and every thread must be
    connected before the start, or the pool would hand connections out one by one.
    """
    parties, budget, worst = 16, Decimal("1.00"), Decimal("0.100")
    set_plan("free", monthly_budget=budget)
    spend(tenant_a.group, "0.750")
    start = threading.Barrier(parties)

    def reserve_and_settle(_):
        try:
            connection.ensure_connection()
            start.wait(timeout=30)
            try:
                reservation = budget_reserve(group=tenant_a.group, cost=worst, tokens=100)
            except QuotaExceeded:
                return False
            # The call "uses" its whole worst case, the most a settle can add.
            ai_calls_record(entries=[entry(tenant_a.group, input_tokens=100)], settle=[reservation])
            return True
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=parties) as pool:
        admitted = sum(pool.map(reserve_and_settle, range(parties)))

    usage = month_row(tenant_a.group)
    print(f"\n{parties} connections: {admitted} admitted, spent {usage.cost} of {budget}")
    assert usage.cost == ledger_sum(tenant_a.group)
    # 0.75 spent: three calls of 0.10 fit under 1.00 and a fourth may start at 0.95.
    assert admitted == 3
    assert usage.cost - budget <= worst
    assert open_reservations(tenant_a.group) == 0


def test_a_reservation_nobody_settles_stops_counting_when_it_expires(tenant_a):
    set_plan("free", monthly_budget=Decimal("1.00"))
    stuck = budget_reserve(group=tenant_a.group, cost=Decimal("5.00"), tokens=10)
    with pytest.raises(QuotaExceeded):
        budget_reserve(group=tenant_a.group, cost=Decimal("0.01"), tokens=10)
    with group_scope(tenant_a.group):
        BudgetReservation.objects.filter(pk=stuck).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    assert budget_reserve(group=tenant_a.group, cost=Decimal("0.01"), tokens=10) is not None


def test_a_token_budget_refuses_like_a_cost_budget(tenant_a):
    set_plan("free", monthly_budget=None, monthly_token_budget=1000)
    spend(tenant_a.group, "0.999")  # 999 tokens
    assert budget_reserve(group=tenant_a.group, cost=Decimal(0), tokens=500) is not None
    with pytest.raises(QuotaExceeded):
        budget_reserve(group=tenant_a.group, cost=Decimal(0), tokens=1)
    with group_scope(tenant_a.group):
        assert budget_status(group=tenant_a.group).share == pytest.approx(0.999)


def test_a_plan_without_a_budget_holds_nothing(tenant_a):
    set_plan("free", monthly_budget=None, monthly_token_budget=None)
    assert budget_reserve(group=tenant_a.group, cost=Decimal("1000"), tokens=10**9) is None

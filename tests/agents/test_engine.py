"""The agent loop end to end: real SDKs over HTTP to the simulator, tools on a real Celery worker,
the ledger in real Postgres. Each scenario runs on both wire formats."""

import asyncio
import time
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async

from agents import catalog
from agents.engine import AgentRun
from agents.models import ToolCall
from agents.tokens import count_tokens
from billing.models import AICall, PriceOverride
from chat.conversation import ThreadConversation
from chat.models import AIThread, Message
from ontology.models import Connection, Event, Thing
from ontology.scoping import group_scope
from tests.agents.conftest import WIRES, Recorder, ingest_text
from tests.billing.conftest import price_overrides  # noqa: F401 - the fixture

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("thread_connections"),
]


def agent_props(provider, model, **extra):
    return {"provider": provider, "model": model, "temperature": 0.2, **extra}


async def run_agent(convo, sink=None):
    sink = sink or Recorder()
    run = AgentRun(
        group=convo.tenant.group,
        conversation=ThreadConversation(group=convo.tenant.group, thread=convo.thread),
        user=convo.tenant.member,
        sink=sink,
    )
    result = await run.execute()
    return run, result, sink


def ledger(convo):
    @database_sync_to_async
    def rows():
        with group_scope(convo.tenant.group):
            return list(AICall.objects.order_by("step", "attempt"))

    return rows()


def expected_cost(row):
    info = catalog.get_model(row.provider, row.model)
    cached = row.cached_tokens
    dollars = (
        (row.input_tokens - cached) * info.input_per_million
        + cached * info.cached_input_per_million
        + row.output_tokens * info.output_per_million
    ) / Decimal(1_000_000)
    return dollars.quantize(Decimal("0.00000001"))


def assert_matches_simulator(rows, sim):
    """Every call that reported usage is in the ledger to the token, priced to the cent."""
    reported = [r for r in rows if r.usage_exact and r.status == AICall.Status.OK]
    assert len(reported) == len(sim.usage_log)
    for row, usage in zip(reported, sim.usage_log, strict=True):
        assert (row.input_tokens, row.output_tokens, row.cached_tokens) == (
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_tokens,
        )
        assert row.cost == expected_cost(row)
        assert row.cost.quantize(Decimal("0.01")) == expected_cost(row).quantize(Decimal("0.01"))


@database_sync_to_async
def reload_message(convo, message_id):
    with group_scope(convo.tenant.group):
        return Message.objects.get(pk=message_id)


@pytest.mark.parametrize(("provider", "model"), WIRES)
async def test_streams_text_and_meters_it(sim, conversation, provider, model):
    convo = await conversation(agent_props(provider, f"{model}@text;words=30;cached=5"))
    _run, result, sink = await run_agent(convo)

    assert sink.types[0] == "run.started"
    assert sink.types[-1] == "run.completed"
    assert [e["seq"] for e in sink.events] == list(range(1, len(sink.events) + 1))
    deltas = sink.of("delta")
    assert deltas and all(d["text"] for d in deltas)
    content = "".join(d["text"] for d in deltas)
    message = await reload_message(convo, result.message_id)
    assert (message.status, message.content) == (Message.Status.COMPLETE, content)

    rows = await ledger(convo)
    assert len(rows) == 1 and rows[0].status == AICall.Status.OK and rows[0].usage_exact
    assert rows[0].cached_tokens == 5
    assert_matches_simulator(rows, sim)
    completed = sink.of("run.completed")[0]
    assert completed["usage"] == {"input": rows[0].input_tokens, "output": rows[0].output_tokens}
    assert Decimal(completed["cost"]) == rows[0].cost
    assert rows[0].ttft_ms is not None


@pytest.mark.parametrize(("provider", "model"), WIRES)
async def test_a_completed_run_is_audited_with_the_message(sim, conversation, provider, model):
    convo = await conversation(agent_props(provider, f"{model}@text"))
    _, result, _ = await run_agent(convo)

    @database_sync_to_async
    def check():
        with group_scope(convo.tenant.group):
            event = Event.objects.get(type="ai_response_completed")
            thread = AIThread.objects.get(pk=convo.thread.pk)
            message = Message.objects.get(pk=result.message_id)
        assert event.target_id == str(result.message_id)
        assert event.metadata["input"] == result.input_tokens
        assert event.metadata["output"] == result.output_tokens
        assert thread.last_activity_at == message.updated_at

    await check()


@pytest.mark.parametrize(("provider", "model"), WIRES)
async def test_a_single_tool_call_runs_on_celery_and_feeds_back(
    sim, celery_worker, conversation, provider, model
):
    convo = await conversation(
        agent_props(provider, f"{model}@tool_call;tool=createTask", tools=["createTask"]),
        question="Remind me to renew the lease",
    )
    _, result, sink = await run_agent(convo)

    assert sink.types[-1] == "run.completed"
    (started,) = sink.of("tool.started")
    (finished,) = sink.of("tool.finished")
    assert started["name"] == "createTask" and started["arguments"]["title"]
    assert finished["ok"] is True and finished["summary"].startswith("Created task")
    assert result.content.startswith("Done:")

    @database_sync_to_async
    def check():
        with group_scope(convo.tenant.group):
            task = Thing.objects.get(type=Thing.Type.TASK)
            assert Connection.objects.get(to_thing=task).from_user == convo.tenant.member
            assert ToolCall.objects.get().status == ToolCall.Status.OK
            assert Event.objects.filter(type="task.created", actor=convo.tenant.member).exists()
            message = Message.objects.get(pk=result.message_id)
            assert message.tool_calls[0]["name"] == "createTask"

    await check()
    rows = await ledger(convo)
    assert [r.step for r in rows] == [0, 1]
    assert_matches_simulator(rows, sim)


@pytest.mark.parametrize(("provider", "model"), WIRES)
async def test_parallel_tool_calls(sim, celery_worker, conversation, provider, model):
    convo = await conversation(
        agent_props(provider, f"{model}@parallel_tools", tools=["createTask", "searchKnowledge"])
    )
    _, _, sink = await run_agent(convo)

    types = sink.types
    assert types.count("tool.started") == 2 and types.count("tool.finished") == 2
    assert types.index("tool.finished") > max(i for i, t in enumerate(types) if t == "tool.started")
    assert {e["name"] for e in sink.of("tool.finished")} == {"createTask", "searchKnowledge"}
    assert all(e["ok"] for e in sink.of("tool.finished"))
    assert types[-1] == "run.completed"
    assert_matches_simulator(await ledger(convo), sim)


@pytest.mark.parametrize(("provider", "model"), WIRES)
async def test_the_tool_loop_stops_at_max_consecutive_tool_calls(
    sim, celery_worker, conversation, provider, model
):
    convo = await conversation(
        agent_props(
            provider, f"{model}@tool_loop", tools=["searchKnowledge"], maxConsecutiveToolCalls=2
        )
    )
    _, result, sink = await run_agent(convo)

    assert len(sink.of("tool.finished")) == 2
    assert sink.types[-1] == "run.completed"
    assert result.content  # the last call offered no tools, so the model answered
    rows = await ledger(convo)
    assert [r.step for r in rows] == [0, 1, 2]
    assert "tools" not in sim.request_log[-1]["body"] or not sim.request_log[-1]["body"]["tools"]
    assert_matches_simulator(rows, sim)


@pytest.mark.parametrize(("provider", "model"), WIRES)
async def test_rate_limited_then_retried(sim, conversation, provider, model):
    convo = await conversation(agent_props(provider, f"{model}@rate_limited_once;retry_after=0"))
    _, _result, sink = await run_agent(convo)

    assert sink.types[-1] == "run.completed"
    rows = await ledger(convo)
    assert [(r.attempt, r.status, r.error_code) for r in rows] == [
        (0, "failed", "provider_rate_limited"),
        (1, "ok", ""),
    ]
    assert (rows[0].input_tokens, rows[0].output_tokens, rows[0].cost) == (0, 0, Decimal(0))
    assert_matches_simulator(rows, sim)


@pytest.mark.parametrize(("provider", "model"), WIRES)
async def test_persistent_failure_falls_back_to_the_fallback_model(
    sim, conversation, provider, model
):
    convo = await conversation(
        agent_props(
            provider,
            f"{model}@server_error",
            fallbackProvider=provider,
            fallbackModel=f"{model}@text",
        )
    )
    _, _result, sink = await run_agent(convo)

    assert sink.types[-1] == "run.completed"
    rows = await ledger(convo)
    assert [(r.model, r.status) for r in rows] == [
        (f"{model}@server_error", "failed"),
        (f"{model}@server_error", "failed"),
        (f"{model}@server_error", "failed"),
        (f"{model}@text", "ok"),
    ]
    assert {r.error_code for r in rows[:3]} == {"provider_unavailable"}
    assert_matches_simulator(rows, sim)


@pytest.mark.parametrize(("provider", "model"), WIRES)
async def test_a_provider_that_goes_quiet_is_a_timeout(
    sim, conversation, settings, provider, model
):
    settings.PARLEY_RETRY_ATTEMPTS = 1
    convo = await conversation(
        agent_props(provider, f"{model}@text;ttft_ms=5000", requestTimeout=0.3)
    )
    _, result, sink = await run_agent(convo)

    (error,) = sink.of("error")
    assert error["code"] == "timeout" and "took too long" in error["message"]
    assert result.status == Message.Status.ERROR
    (row,) = await ledger(convo)
    assert (row.status, row.error_code) == ("failed", "timeout")


@pytest.mark.parametrize(("provider", "model"), WIRES)
async def test_context_length_is_reported_not_retried(sim, conversation, provider, model):
    convo = await conversation(agent_props(provider, f"{model}@context_length"))
    _, result, sink = await run_agent(convo)

    (error,) = sink.of("error")
    assert error["code"] == "context_length"
    assert "too long" in error["message"]
    message = await reload_message(convo, result.message_id)
    assert (message.status, message.error_code) == (Message.Status.ERROR, "context_length")
    rows = await ledger(convo)
    assert [(r.status, r.error_code) for r in rows] == [("failed", "context_length")]


@pytest.mark.parametrize(("provider", "model"), WIRES)
async def test_a_mid_stream_disconnect_keeps_the_partial_answer_and_estimates_usage(
    sim, conversation, provider, model
):
    convo = await conversation(agent_props(provider, f"{model}@disconnect;words=40"))
    _, result, sink = await run_agent(convo)

    assert sink.of("error")[0]["code"] == "provider_unavailable"
    partial = "".join(d["text"] for d in sink.of("delta"))
    assert partial
    message = await reload_message(convo, result.message_id)
    assert (message.status, message.content) == (Message.Status.ERROR, partial)
    (row,) = await ledger(convo)  # no retry after the first token: it would repeat text
    assert (row.status, row.usage_exact) == ("failed", False)
    assert row.output_tokens == count_tokens(partial)
    assert row.input_tokens > 0
    assert row.cost == expected_cost(row)


@pytest.mark.parametrize(("provider", "model"), WIRES)
async def test_stop_ends_the_stream_promptly_and_keeps_the_partial_answer(
    sim, conversation, provider, model
):
    convo = await conversation(agent_props(provider, f"{model}@slow;ttft_ms=0;tps=20;words=400"))
    sink = Recorder()
    run = AgentRun(
        group=convo.tenant.group,
        conversation=ThreadConversation(group=convo.tenant.group, thread=convo.thread),
        user=convo.tenant.member,
        sink=sink,
    )
    task = asyncio.create_task(run.execute())
    await asyncio.wait_for(sink.first_delta.wait(), timeout=10)
    asked = time.monotonic()
    run.stop()
    result = await asyncio.wait_for(task, timeout=10)
    stopped_at = next(i for i, e in enumerate(sink.events) if e["type"] == "run.stopped")

    assert time.monotonic() - asked < 0.2
    assert sink.types[-1] == "run.stopped" and stopped_at == len(sink.events) - 1
    partial = "".join(d["text"] for d in sink.of("delta"))
    message = await reload_message(convo, result.message_id)
    assert (message.status, message.content) == (Message.Status.STOPPED, partial)
    assert 0 < count_tokens(partial) < 400
    (row,) = await ledger(convo)
    assert (row.status, row.usage_exact) == ("stopped", False)
    assert row.output_tokens == count_tokens(partial)
    assert row.cost == expected_cost(row) > 0


async def test_invalid_tool_arguments_are_a_failure_the_model_sees(
    sim, celery_worker, conversation
):
    convo = await conversation(
        agent_props(
            "simulator", 'sim-gpt@tool_call;tool=createTask;args={"title": 5}', tools=["createTask"]
        )
    )
    _, result, sink = await run_agent(convo)

    (finished,) = sink.of("tool.finished")
    assert finished["ok"] is False
    assert "Invalid arguments for createTask" in finished["summary"]
    assert "Invalid arguments" in result.content  # the model read the failure back
    assert sink.types[-1] == "run.completed"
    tool_message = sim.request_log[-1]["body"]["messages"][-1]
    assert tool_message["role"] == "tool" and "error" in tool_message["content"]


@pytest.mark.parametrize(
    ("tool", "says"),
    [("explodeTool", "failed unexpectedly"), ("refuseTool", "The warehouse system said no.")],
)
async def test_a_tool_that_raises_fails_cleanly(
    sim, celery_worker, conversation, test_tools, tool, says
):
    convo = await conversation(
        agent_props("simulator", f"sim-gpt@tool_call;tool={tool}", tools=[tool])
    )
    _, result, sink = await run_agent(convo)

    (finished,) = sink.of("tool.finished")
    assert finished["ok"] is False and says in finished["summary"]
    assert says in result.content
    assert sink.types[-1] == "run.completed"

    @database_sync_to_async
    def record():
        with group_scope(convo.tenant.group):
            return ToolCall.objects.get()

    stored = await record()
    assert (stored.status, says in stored.error) == (ToolCall.Status.FAILED, True)


async def test_a_tool_that_times_out_fails_cleanly(sim, celery_worker, conversation, test_tools):
    convo = await conversation(
        agent_props(
            "simulator", "sim-gpt@tool_call;tool=hangTool", tools=["hangTool"], toolCallTimeout=0.3
        )
    )
    _, _result, sink = await run_agent(convo)

    (finished,) = sink.of("tool.finished")
    assert finished["ok"] is False and "Timed out after 0.3 s" in finished["summary"]
    assert sink.types[-1] == "run.completed"


async def test_offline_mode_searches_knowledge_and_cites_it(sim, celery_worker, conversation):
    convo = await conversation(
        agent_props("simulator", "sim-gpt", tools=["searchKnowledge"]),
        question="How many days do customers have for refunds?",
    )
    other = await conversation(agent_props("simulator", "sim-gpt"), slug="rival")

    @database_sync_to_async
    def add_knowledge():
        ingest_text(
            convo.tenant.group,
            "Refund policy",
            "Customers have 30 days for refunds. Keep the receipt.",
        )
        ingest_text(
            other.tenant.group,
            "Rival refund policy",
            "Customers have 90 days for refunds, customers refunds days days.",
        )

    await add_knowledge()
    _, result, sink = await run_agent(convo)

    (sources,) = sink.of("sources")
    assert [(s["n"], s["title"]) for s in sources["items"]] == [(1, "Refund policy")]
    assert "30 days" in result.content and "[1]" in result.content
    assert "90 days" not in result.content


async def test_rag_context_is_added_automatically(sim, conversation):
    convo = await conversation(
        agent_props("simulator", "sim-gpt", ragEnabled=True, ragTopK=3),
        question="What is the parking rule?",
    )

    @database_sync_to_async
    def add_knowledge():
        ingest_text(convo.tenant.group, "Parking", "Park only in bay C on Fridays.")

    await add_knowledge()
    _, result, sink = await run_agent(convo)

    assert sink.types[:2] == ["run.started", "sources"]
    assert (
        "[1] Parking: Park only in bay C" in sim.request_log[-1]["body"]["messages"][0]["content"]
    )
    assert "bay C" in result.content and "[1]" in result.content


async def test_a_missing_api_key_is_a_clear_error(sim, conversation, settings):
    settings.PARLEY_PROVIDER_API_KEYS = {**settings.PARLEY_PROVIDER_API_KEYS, "simulator": ""}
    convo = await conversation(agent_props("simulator", "sim-gpt@text"))
    _, result, sink = await run_agent(convo)

    (error,) = sink.of("error")
    assert error["code"] == "auth" and "API key" in error["message"]
    message = await reload_message(convo, result.message_id)
    assert message.status == Message.Status.ERROR
    assert sim.request_log == []


@pytest.mark.usefixtures("price_overrides")
async def test_a_price_override_applies_to_new_calls_only(sim, conversation):
    convo = await conversation(agent_props("simulator", "sim-gpt@text"))
    await run_agent(convo)
    (before,) = await ledger(convo)

    @database_sync_to_async
    def override():
        PriceOverride.objects.create(
            provider="simulator",
            model="sim-gpt",
            input_per_million=Decimal("10"),
            output_per_million=Decimal("20"),
        )

    await override()
    _, _second, _ = await run_agent(convo)
    rows = await ledger(convo)
    after = next(r for r in rows if r.id != before.id)
    assert (after.input_price, after.output_price) == (Decimal("10"), Decimal("20"))
    assert after.cost == (
        (after.input_tokens * Decimal(10) + after.output_tokens * Decimal(20)) / Decimal(10**6)
    ).quantize(Decimal("0.00000001"))
    unchanged = next(r for r in rows if r.id == before.id)
    assert (unchanged.input_price, unchanged.cost) == (before.input_price, before.cost)


async def test_a_groups_own_endpoint_is_only_connected_to_on_public_addresses(
    sim, conversation, settings
):
    """A stored URL whose name resolves to a private address now (it pointed elsewhere when it
    was saved, or its DNS answer changed) is never connected to: aiohttp resolves it through
    the platform's checking resolver. Here the name is localhost and the simulator listens
    there, so a connection would have reached it."""
    settings.PARLEY_ALLOW_PRIVATE_BASE_URLS = False
    convo = await conversation(agent_props("simulator", "sim-gpt@text"))

    @database_sync_to_async
    def store_key():  # straight into the table: saving it would have resolved the name
        from agents.encryption import encrypt
        from agents.models import ProviderCredential

        ProviderCredential.objects.create(
            group=convo.tenant.group,
            provider="simulator",
            encrypted_api_key=encrypt("group-own-key"),
            base_url=f"http://localhost:{sim.port}/v1",
        )

    await store_key()
    _, refused, sink = await run_agent(convo)
    assert sink.of("error")[0]["code"] == "endpoint_refused"
    assert refused.status == Message.Status.ERROR
    assert sim.request_log == []  # no retry either: the answer would not change

    settings.PARLEY_ALLOW_PRIVATE_BASE_URLS = True  # development: the same endpoint is called
    _, answered, _ = await run_agent(convo)
    assert answered.status == Message.Status.COMPLETE
    assert sim.request_log


async def test_a_groups_own_endpoint_is_used_for_its_runs_only(sim, conversation, settings):
    settings.PARLEY_ALLOW_PRIVATE_BASE_URLS = True
    mine = await conversation(agent_props("simulator", "sim-gpt@text"))
    other = await conversation(agent_props("simulator", "sim-gpt@text"), slug="rival")

    @database_sync_to_async
    def store_key():
        from agents import services

        services.credential_set(
            group=mine.tenant.group,
            provider="simulator",
            api_key="group-own-key",
            base_url="http://127.0.0.1:9/v1",
            actor=None,
        )

    await store_key()
    _, _, my_sink = await run_agent(mine)
    _, other_result, _ = await run_agent(other)

    assert my_sink.of("error")[0]["code"] == "provider_unavailable"  # its endpoint: port 9
    assert other_result.status == Message.Status.COMPLETE

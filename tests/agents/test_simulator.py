"""The provider simulator, driven over HTTP by the real OpenAI and Anthropic SDKs (no mocks).

The platform's provider code, meter and retry logic are tested against this simulator, so
these tests pin what those tests rely on: the SDKs parse every response, errors arrive as
the SDKs' own exception classes, and the usage a response reports is exact to the token.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic
import httpx2
import openai
import pytest

from agents.simulator import SimulatorThread, parse_scenario
from agents.tokens import MESSAGE_OVERHEAD, count_tokens

WIRES = ["openai", "anthropic"]
QUESTION = "How long do refunds take?"
SEARCH_SCHEMA = {
    "type": "object",
    "properties": {"query": {"type": "string", "maxLength": 2000}},
    "required": ["query"],
}
TASK_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 10},
        "priority": {"type": "string", "enum": ["low", "high"]},
        "days": {"type": "integer", "minimum": 2},
        "notes": {"type": "string"},
    },
    "required": ["title", "priority", "days"],
}
SEARCH_RESULTS = json.dumps(
    {
        "results": [
            {"n": 1, "title": "Refunds", "content": "Refunds take five days. Ask support."},
            {"n": 2, "title": "Shipping", "content": "We ship worldwide! Fees vary."},
        ]
    }
)


@dataclass
class Answer:
    """One response as the SDK assembled it, in terms both wires share."""

    id: str
    text: str
    tool_calls: list[tuple[str, str, Any]]  # (id, name, parsed arguments)
    stop: str
    input_tokens: int  # the whole prompt, cached part included
    output_tokens: int
    cached_tokens: int


@dataclass
class Clients:
    openai: openai.AsyncOpenAI
    anthropic: anthropic.AsyncAnthropic


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    """This file's own server (not the engine conftest's): no Django settings, no database."""
    with SimulatorThread() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_logs(sim: SimulatorThread) -> None:
    sim.clear()


@pytest.fixture
async def clients(sim: SimulatorThread) -> AsyncIterator[Clients]:
    both = Clients(
        openai=openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0),
        anthropic=anthropic.AsyncAnthropic(
            base_url=sim.anthropic_base_url, api_key="sk-ant-test", max_retries=0
        ),
    )
    yield both
    await both.openai.close()
    await both.anthropic.close()


def wire_tools(wire: str, tools: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    if wire == "openai":
        return [
            {"type": "function", "function": {"name": name, "parameters": schema}}
            for name, schema in tools.items()
        ]
    return [{"name": name, "input_schema": schema} for name, schema in tools.items()]


async def ask(
    clients: Clients,
    wire: str,
    model: str,
    messages: list[dict[str, Any]],
    *,
    tools: dict[str, dict[str, Any]] | None = None,
    system: str | None = None,
    max_tokens: int = 1000,
    headers: dict[str, str] | None = None,
) -> Answer:
    """Stream one completion through the SDK's own accumulating stream helper."""
    options: dict[str, Any] = {"extra_headers": headers} if headers else {}
    if tools:
        options["tools"] = wire_tools(wire, tools)
    if wire == "openai":
        if system:
            messages = [{"role": "system", "content": system}, *messages]
        async with clients.openai.chat.completions.stream(
            model=model,
            messages=messages,
            max_completion_tokens=max_tokens,
            stream_options={"include_usage": True},
            **options,
        ) as stream:
            try:
                completion = await stream.get_final_completion()
            except openai.LengthFinishReasonError as cut:  # the helper refuses to parse a cut
                completion = cut.completion
        choice, usage = completion.choices[0], completion.usage
        calls = [
            (call.id, call.function.name, json.loads(call.function.arguments))
            for call in choice.message.tool_calls or []
        ]
        return Answer(
            id=completion.id,
            text=choice.message.content or "",
            tool_calls=calls,
            stop=choice.finish_reason,
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cached_tokens=usage.prompt_tokens_details.cached_tokens,
        )
    if system:
        options["system"] = system
    async with clients.anthropic.messages.stream(
        model=model, messages=messages, max_tokens=max_tokens, **options
    ) as stream:
        message = await stream.get_final_message()
    usage = message.usage
    return Answer(
        id=message.id,
        text="".join(block.text for block in message.content if block.type == "text"),
        tool_calls=[
            (block.id, block.name, block.input)
            for block in message.content
            if block.type == "tool_use"
        ],
        stop=message.stop_reason,
        input_tokens=usage.input_tokens + usage.cache_read_input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cache_read_input_tokens,
    )


def after_tool_round(wire: str, answer: Answer, result: str) -> list[dict[str, Any]]:
    """The conversation after the model's tool calls in ``answer`` each returned ``result``."""
    if wire == "openai":
        calls = [
            {"id": id_, "type": "function", "function": {"name": name, "arguments": json.dumps(a)}}
            for id_, name, a in answer.tool_calls
        ]
        results = [
            {"role": "tool", "tool_call_id": id_, "content": result}
            for id_, _, _ in answer.tool_calls
        ]
        return [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": None, "tool_calls": calls},
            *results,
        ]
    uses = [
        {"type": "tool_use", "id": id_, "name": name, "input": a}
        for id_, name, a in answer.tool_calls
    ]
    results = [
        {"type": "tool_result", "tool_use_id": id_, "content": result}
        for id_, _, _ in answer.tool_calls
    ]
    return [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": uses},
        {"role": "user", "content": results},
    ]


def user(text: str = QUESTION) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def model_for(wire: str, scenario: str = "") -> str:
    model = "sim-gpt" if wire == "openai" else "sim-claude"
    return f"{model}@{scenario}" if scenario else model


async def create(clients: Clients, wire: str, model: str, **options: Any) -> Any:
    """A plain ``create`` call, for the tests about errors raised before any stream."""
    if wire == "openai":
        return await clients.openai.chat.completions.create(model=model, messages=user(), **options)
    return await clients.anthropic.messages.create(
        model=model, messages=user(), max_tokens=100, **options
    )


@pytest.mark.parametrize("wire", WIRES)
async def test_streamed_text_reports_exact_usage(sim, clients, wire):
    answer = await ask(clients, wire, model_for(wire, "text"), user())

    assert answer.text
    assert answer.stop == ("stop" if wire == "openai" else "end_turn")
    assert answer.input_tokens == count_tokens(QUESTION) + MESSAGE_OVERHEAD
    assert answer.output_tokens == count_tokens(answer.text)
    assert answer.cached_tokens == 0
    reported = sim.usage_log[-1]
    assert (reported.wire, reported.model, reported.response_id) == (
        wire,
        model_for(wire, "text"),
        answer.id,
    )
    assert (reported.input_tokens, reported.output_tokens, reported.cached_tokens) == (
        answer.input_tokens,
        answer.output_tokens,
        answer.cached_tokens,
    )


@pytest.mark.parametrize("wire", WIRES)
async def test_system_prompt_and_tools_count_toward_the_prompt(clients, wire):
    system = "You are helpful."
    tools = {"searchKnowledge": SEARCH_SCHEMA}

    answer = await ask(clients, wire, model_for(wire, "text"), user(), system=system, tools=tools)

    messages = [system, QUESTION] if wire == "openai" else [QUESTION]
    expected = (
        (0 if wire == "openai" else count_tokens(system))
        + sum(count_tokens(text) + MESSAGE_OVERHEAD for text in messages)
        + count_tokens(json.dumps(wire_tools(wire, tools), sort_keys=True))
    )
    assert answer.input_tokens == expected


@pytest.mark.parametrize("wire", WIRES)
async def test_cached_tokens_are_part_of_the_prompt(sim, clients, wire):
    answer = await ask(clients, wire, model_for(wire, "text;cached=3"), user())

    assert answer.cached_tokens == 3
    assert answer.input_tokens == count_tokens(QUESTION) + MESSAGE_OVERHEAD
    assert sim.usage_log[-1].cached_tokens == 3


async def test_anthropic_stream_reports_cumulative_output_not_an_increment(sim, clients):
    async with clients.anthropic.messages.stream(
        model="sim-claude@text", messages=user(), max_tokens=100
    ) as stream:
        events = [event async for event in stream]

    start = next(event for event in events if event.type == "message_start")
    delta = next(event for event in events if event.type == "message_delta")
    assert start.message.usage.output_tokens == 1
    assert delta.usage.output_tokens == sim.usage_log[-1].output_tokens > 1


async def test_openai_stream_without_include_usage_reports_and_logs_none(sim, clients):
    stream = await clients.openai.chat.completions.create(
        model="sim-gpt@text", messages=user(), stream=True
    )
    chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert all(chunk.usage is None for chunk in chunks)
    assert sim.usage_log == []


@pytest.mark.parametrize("wire", WIRES)
async def test_tool_call_is_assembled_with_schema_arguments(sim, clients, wire):
    tools = {"createTask": TASK_SCHEMA, "searchKnowledge": SEARCH_SCHEMA}

    answer = await ask(clients, wire, model_for(wire, "tool_call"), user(), tools=tools)

    assert answer.stop == ("tool_calls" if wire == "openai" else "tool_use")
    [(_, name, arguments)] = answer.tool_calls
    assert name == "createTask"
    assert arguments == {"title": QUESTION[:10], "priority": "low", "days": 2}
    assert answer.output_tokens == count_tokens(json.dumps(arguments))
    assert sim.usage_log[-1].output_tokens == answer.output_tokens


@pytest.mark.parametrize("wire", WIRES)
async def test_tool_call_names_a_tool_and_sends_raw_arguments(clients, wire):
    tools = {"createTask": TASK_SCHEMA, "searchKnowledge": SEARCH_SCHEMA}
    scenario = 'tool_call;tool=searchKnowledge;args={"query": "a;b", "limit": 3}'

    answer = await ask(clients, wire, model_for(wire, scenario), user(), tools=tools)

    assert [(name, a) for _, name, a in answer.tool_calls] == [
        ("searchKnowledge", {"query": "a;b", "limit": 3})
    ]


@pytest.mark.parametrize("wire", WIRES)
async def test_tool_call_then_done_after_the_tool_result(clients, wire):
    tools = {"searchKnowledge": SEARCH_SCHEMA}
    call = await ask(clients, wire, model_for(wire, "tool_call"), user(), tools=tools)

    messages = after_tool_round(wire, call, "x" * 150)
    answer = await ask(clients, wire, model_for(wire, "tool_call"), messages, tools=tools)

    assert answer.tool_calls == []
    assert answer.text == "Done: " + "x" * 100


@pytest.mark.parametrize("wire", WIRES)
async def test_parallel_tools_returns_two_calls(clients, wire):
    tools = {"searchKnowledge": SEARCH_SCHEMA, "createTask": TASK_SCHEMA}

    answer = await ask(clients, wire, model_for(wire, "parallel_tools"), user(), tools=tools)

    assert [name for _, name, _ in answer.tool_calls] == ["searchKnowledge", "createTask"]
    assert len({call_id for call_id, _, _ in answer.tool_calls}) == 2


@pytest.mark.parametrize("wire", WIRES)
async def test_parallel_tools_repeats_a_single_tool_with_distinct_ids(clients, wire):
    tools = {"searchKnowledge": SEARCH_SCHEMA}

    answer = await ask(clients, wire, model_for(wire, "parallel_tools"), user(), tools=tools)

    assert [name for _, name, _ in answer.tool_calls] == ["searchKnowledge"] * 2
    assert len({call_id for call_id, _, _ in answer.tool_calls}) == 2


@pytest.mark.parametrize("wire", WIRES)
async def test_tool_loop_keeps_calling_until_tools_are_withdrawn(clients, wire):
    tools = {"searchKnowledge": SEARCH_SCHEMA}
    first = await ask(clients, wire, model_for(wire, "tool_loop"), user(), tools=tools)
    messages = after_tool_round(wire, first, SEARCH_RESULTS)

    again = await ask(clients, wire, model_for(wire, "tool_loop"), messages, tools=tools)
    final = await ask(clients, wire, model_for(wire, "tool_loop"), messages)

    assert [name for _, name, _ in again.tool_calls] == ["searchKnowledge"]
    assert final.tool_calls == []
    assert final.text


@pytest.mark.parametrize("wire", WIRES)
async def test_offline_searches_then_answers_with_citations(sim, clients, wire):
    tools = {"searchKnowledge": SEARCH_SCHEMA}
    call = await ask(clients, wire, "sim-model", user(), tools=tools)

    assert [(name, a) for _, name, a in call.tool_calls] == [
        ("searchKnowledge", {"query": QUESTION})
    ]
    messages = after_tool_round(wire, call, SEARCH_RESULTS)
    answer = await ask(clients, wire, "sim-model", messages, tools=tools)

    assert answer.text == (
        "Here is what I found. Refunds take five days. [1] We ship worldwide! [2]"
    )
    assert sim.request_log[-1]["scenario"] == "offline"


@pytest.mark.parametrize("wire", WIRES)
async def test_offline_says_so_when_the_search_found_nothing(clients, wire):
    tools = {"searchKnowledge": SEARCH_SCHEMA}
    call = await ask(clients, wire, "sim-model", user(), tools=tools)

    messages = after_tool_round(wire, call, "not json")
    answer = await ask(clients, wire, "sim-model", messages, tools=tools)

    assert answer.text == "I could not find anything about that in the knowledge base."


async def test_offline_answers_from_passages_in_the_system_prompt(clients):
    system = "Answer from these.\n[1] Refunds: Refunds take five days. Ask.\n[2] Hours: 9 to 5"

    answer = await ask(clients, "anthropic", "sim-claude", user(), system=system)

    assert answer.text == "Here is what I found. Refunds take five days. [1] 9 to 5 [2]"


async def test_offline_without_knowledge_repeats_the_question(clients):
    answer = await ask(clients, "openai", "sim-gpt", user("Hello?"))

    assert answer.text == "I am Parley's offline model. You asked: Hello?"


@pytest.mark.parametrize("wire", WIRES)
async def test_rate_limited_once_then_the_same_request_succeeds(sim, clients, wire):
    model = model_for(wire, "rate_limited_once;retry_after=0")
    error = openai.RateLimitError if wire == "openai" else anthropic.RateLimitError

    with pytest.raises(error) as raised:
        await ask(clients, wire, model, user())
    answer = await ask(clients, wire, model, user())

    assert raised.value.response.headers["retry-after"] == "0"
    assert answer.text
    assert len(sim.request_log) == 2
    assert len(sim.usage_log) == 1


@pytest.mark.parametrize("wire", WIRES)
async def test_rate_limited_always_fails(clients, wire):
    error = openai.RateLimitError if wire == "openai" else anthropic.RateLimitError
    for _ in range(2):
        with pytest.raises(error):
            await create(clients, wire, model_for(wire, "rate_limited"))


async def test_openai_server_error_is_an_internal_server_error(clients):
    with pytest.raises(openai.InternalServerError) as raised:
        await create(clients, "openai", "sim-gpt@server_error")

    assert raised.value.status_code == 500
    assert raised.value.body["type"] == "server_error"


async def test_anthropic_server_error_is_overloaded_529(clients):
    with pytest.raises(anthropic.APIStatusError) as raised:
        await create(clients, "anthropic", "sim-claude@server_error")

    assert raised.value.status_code == 529
    assert raised.value.body["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize("wire", WIRES)
async def test_server_error_once_then_succeeds(clients, wire):
    error = openai.InternalServerError if wire == "openai" else anthropic.InternalServerError
    with pytest.raises(error):
        await create(clients, wire, model_for(wire, "server_error_once"))

    assert await create(clients, wire, model_for(wire, "server_error_once"))


@pytest.mark.parametrize("wire", WIRES)
async def test_context_length_is_a_bad_request_naming_the_prompt_size(clients, wire):
    prompt = count_tokens(QUESTION) + MESSAGE_OVERHEAD
    error = openai.BadRequestError if wire == "openai" else anthropic.BadRequestError

    with pytest.raises(error) as raised:
        await create(clients, wire, model_for(wire, "context_length"))

    if wire == "openai":
        assert raised.value.code == "context_length_exceeded"
        assert f"your messages resulted in {prompt} tokens" in raised.value.message
    else:
        assert raised.value.body["error"] == {
            "type": "invalid_request_error",
            "message": f"prompt is too long: {prompt} tokens > 200000 maximum",
        }


@pytest.mark.parametrize("wire", WIRES)
async def test_disconnect_cuts_the_stream_without_usage(sim, clients, wire):
    received = []
    with pytest.raises((openai.APIConnectionError, anthropic.APIConnectionError, httpx2.HTTPError)):
        stream = await create(clients, wire, model_for(wire, "disconnect;words=20"), stream=True)
        async for event in stream:
            received.append(event)

    assert len(received) > 1
    assert sim.usage_log == []


@pytest.mark.parametrize("wire", WIRES)
async def test_disconnect_without_streaming_gets_no_response(sim, clients, wire):
    error = openai.APIConnectionError if wire == "openai" else anthropic.APIConnectionError
    with pytest.raises(error):
        await create(clients, wire, model_for(wire, "disconnect"))

    assert sim.usage_log == []


@pytest.mark.parametrize(
    ("path", "error_type"),
    [("/v1/chat/completions", "invalid_request_error"), ("/v1/messages", "authentication_error")],
)
async def test_missing_api_key_is_a_401_in_the_wire_format(sim, path, error_type):
    # The SDKs refuse to send a request without a key, so this one is built by hand.
    body = {"model": "sim", "max_tokens": 10, "messages": user()}
    async with aiohttp.ClientSession() as session, session.post(sim.url + path, json=body) as r:
        status, payload = r.status, await r.json()

    assert status == 401
    error = payload["error"]
    assert error["type"] == error_type
    assert "API key" in error["message"]


async def test_openai_sdk_maps_a_missing_key_to_authentication_error(clients):
    with pytest.raises(openai.AuthenticationError):
        await create(clients, "openai", "sim-gpt", extra_headers={"Authorization": openai.Omit()})


@pytest.mark.parametrize("wire", WIRES)
async def test_scenario_header_overrides_the_model_suffix(sim, clients, wire):
    model = model_for(wire, "server_error")

    answer = await ask(clients, wire, model, user(), headers={"X-Simulator-Scenario": "text"})

    assert answer.text
    assert sim.request_log[-1]["scenario"] == "text"
    assert sim.usage_log[-1].model == model


@pytest.mark.parametrize("wire", WIRES)
async def test_max_tokens_cuts_the_answer(sim, clients, wire):
    answer = await ask(clients, wire, model_for(wire, "text;words=30"), user(), max_tokens=3)

    assert answer.stop == ("length" if wire == "openai" else "max_tokens")
    assert count_tokens(answer.text) == answer.output_tokens == 3


@pytest.mark.parametrize("wire", WIRES)
async def test_non_streaming_reply_matches_the_log(sim, clients, wire):
    response = await create(clients, wire, model_for(wire, "text"))

    reported = sim.usage_log[-1]
    assert reported.response_id == response.id
    if wire == "openai":
        assert response.choices[0].message.content
        assert response.usage.completion_tokens == reported.output_tokens
    else:
        assert response.content[0].text
        assert response.usage.output_tokens == reported.output_tokens


async def test_unknown_scenario_is_a_bad_request(clients):
    with pytest.raises(openai.BadRequestError, match="Unknown simulator scenario"):
        await create(clients, "openai", "sim-gpt@typo")


@pytest.mark.parametrize(
    ("model", "dimensions", "expected"),
    [
        ("text-embedding-3-small", None, 1536),
        ("text-embedding-3-large", None, 3072),
        ("local-embedder", None, 384),
        ("text-embedding-3-small", 256, 256),
    ],
)
async def test_embeddings_have_the_model_dimensions(clients, model, dimensions, expected):
    options = {"dimensions": dimensions} if dimensions else {}

    result = await clients.openai.embeddings.create(model=model, input="refunds", **options)

    vector = result.data[0].embedding
    assert len(vector) == expected
    assert math.isclose(math.sqrt(sum(value * value for value in vector)), 1.0, rel_tol=1e-5)


async def test_embeddings_are_deterministic_per_text_and_report_usage(sim, clients):
    texts = ["refund policy", "shipping times", "refund policy"]

    first = await clients.openai.embeddings.create(model="text-embedding-3-small", input=texts)
    again = await clients.openai.embeddings.create(
        model="text-embedding-3-small", input=texts[0], encoding_format="float"
    )

    vectors = [item.embedding for item in first.data]
    assert vectors[0] == vectors[2] != vectors[1]
    assert again.data[0].embedding == pytest.approx(vectors[0], abs=1e-6)
    assert first.usage.prompt_tokens == sum(count_tokens(text) for text in texts)
    assert sim.usage_log[0].input_tokens == first.usage.prompt_tokens


async def test_slow_paces_the_stream(clients):
    answer = await ask(clients, "openai", "sim-gpt@slow;words=3;ttft_ms=1;tps=200", user())

    assert answer.text


async def test_healthz(sim):
    async with aiohttp.ClientSession() as session, session.get(sim.url + "/healthz") as response:
        assert (response.status, await response.json()) == (200, {"ok": True})


def test_scenario_grammar_keeps_json_values_whole():
    scenario = parse_scenario('tool_call;tool=x;args={"q": "a;b"};retry_after=2')

    assert scenario.name == "tool_call"
    assert scenario.params == {"tool": "x", "args": '{"q": "a;b"}', "retry_after": "2"}


def test_scenario_grammar_keeps_broken_json_up_to_the_next_separator():
    scenario = parse_scenario('tool_call;args={"q": ;words=3')

    assert scenario.params == {"args": '{"q": ', "words": "3"}

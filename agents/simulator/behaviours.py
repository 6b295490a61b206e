"""What each scenario makes the simulated model do: fail, answer, or call tools, and how fast."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from agents.simulator.conversation import Conversation, OfferedTool
from agents.simulator.offline import USER_TEXT_LIMIT, offline_reply
from agents.simulator.replies import Failure, Reply, ToolCall
from agents.simulator.scenario import Scenario

DEFAULT_WORDS = 12

_FILLER = (
    "quick answer depends on context so we keep it short and clear while the team checks each "
    "step with care before moving forward together toward a simple plan that works well for "
    "everyone involved in this small project today"
)
FILLER_WORDS = tuple(_FILLER.split())


def filler_text(seed: str, words: int) -> str:
    """A stable, ordinary-looking sentence, so repeated runs of one request stream the same."""
    if words <= 0:
        return ""
    digest = hashlib.shake_256(seed.encode()).digest(2 * words)
    chosen = [
        FILLER_WORDS[int.from_bytes(digest[2 * i : 2 * i + 2], "big") % len(FILLER_WORDS)]
        for i in range(words)
    ]
    return " ".join(chosen).capitalize() + "."


def _schema_value(schema: Any, user_text: str) -> Any:
    if not isinstance(schema, dict):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), None)
    if kind == "string":
        limit = schema.get("maxLength")
        return user_text[: limit if isinstance(limit, int) else USER_TEXT_LIMIT]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    if kind == "object":
        return {}
    if kind == "array":
        return []
    return None


def synthesize_arguments(schema: Mapping[str, Any], user_text: str) -> dict[str, Any]:
    """Fill the schema's required properties with the simplest valid-looking values."""
    properties = schema.get("properties") or {}
    required = schema.get("required") or []
    return {name: _schema_value(properties.get(name), user_text) for name in required}


def _tool_calls(
    scenario: Scenario, conversation: Conversation, *, count: int
) -> tuple[ToolCall, ...]:
    named = scenario.params.get("tool")
    if named:
        tools = [conversation.tool_named(named) or OfferedTool(name=named, schema={})] * count
    else:
        tools = list(conversation.tools[:count])
        tools += [tools[0]] * (count - len(tools))
    calls = []
    for tool in tools:
        arguments = scenario.params.get("args")
        if arguments is None:
            arguments = json.dumps(synthesize_arguments(tool.schema, conversation.last_user_text))
        calls.append(ToolCall(name=tool.name, arguments=arguments))
    return tuple(calls)


def plan_failure(scenario: Scenario, *, attempt: int) -> Failure | None:
    """The error this attempt gets, if any; ``attempt`` counts this scenario+fingerprint from 1."""
    name = scenario.name
    if name == "rate_limited" or (name == "rate_limited_once" and attempt == 1):
        return Failure(kind="rate_limited", retry_after=scenario.number("retry_after", 1))
    if name == "server_error" or (name == "server_error_once" and attempt == 1):
        return Failure(kind="server_error")
    if name == "context_length":
        return Failure(kind="context_length")
    return None


def plan_reply(
    scenario: Scenario,
    conversation: Conversation,
    *,
    seed: str,
    attempt: int,
    ttft_ms: float = 0.0,
    tokens_per_second: float = 0.0,
) -> Reply | Failure:
    """Decide the response. ``attempt`` counts requests with this scenario and fingerprint, from 1.

    ``ttft_ms`` and ``tokens_per_second`` are the server's defaults; the scenario's ``ttft_ms``
    and ``tps`` parameters override them (``slow`` has its own defaults of 50 ms and 20/s).
    """
    failure = plan_failure(scenario, attempt=attempt)
    if failure is not None:
        return failure
    name = scenario.name
    if name == "slow":
        ttft_ms, tokens_per_second = 50.0, 20.0
    ttft_ms = scenario.number("ttft_ms", ttft_ms)
    tokens_per_second = scenario.number("tps", tokens_per_second)
    filler = filler_text(seed, scenario.integer("words", DEFAULT_WORDS))
    text, calls = filler, ()
    if name == "text" and "reply" in scenario.params:
        text = scenario.params["reply"]
        if text.startswith('"'):
            text = json.loads(text)
    if name in ("offline", "rate_limited_once", "server_error_once"):
        text, calls = offline_reply(conversation)
    elif name in ("tool_call", "parallel_tools"):
        if conversation.ends_with_tool_results:
            text = "Done: " + " ".join(conversation.trailing_tool_results)[:100]
        elif conversation.tools:
            count = 2 if name == "parallel_tools" else 1
            text, calls = "", _tool_calls(scenario, conversation, count=count)
    elif name == "tool_loop" and conversation.tools:
        text, calls = "", _tool_calls(scenario, conversation, count=1)

    return Reply(
        text=text,
        tool_calls=calls,
        ttft_s=ttft_ms / 1000,
        token_delay_s=1 / tokens_per_second if tokens_per_second > 0 else 0.0,
        cached_tokens=min(scenario.integer("cached", 0), conversation.prompt_tokens),
        disconnect=name == "disconnect",
    )

"""Build what the model sees: the system prompt (with knowledge), the history that fits."""

from __future__ import annotations

import json
from collections.abc import Sequence

from agents.providers import ChatMessage, ChatRequest, ToolDefinition
from agents.tokens import MESSAGE_OVERHEAD, count_message_tokens, count_tokens

SAFETY_MARGIN = 64  # our token counts are estimates; leave the provider some room


def system_prompt(base: str, passages: Sequence[dict]) -> str:
    if not passages:
        return base
    lines = [
        base.rstrip(),
        "",
        "Passages from the organisation's knowledge. Use them when they help and cite them as [n]:",
    ]
    lines += [f"[{p['n']}] {p['title']}: {p['content']}" for p in passages]
    return "\n".join(lines).strip()


def tool_definitions_tokens(tools: Sequence[ToolDefinition]) -> int:
    if not tools:
        return 0
    payload = [
        {"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools
    ]
    return count_tokens(json.dumps(payload, sort_keys=True))


def fit_history(history: Sequence[tuple[str, str]], *, budget: int) -> list[ChatMessage]:
    """Keep the newest (role, content) pairs that fit in `budget` tokens, oldest first.

    The newest message is always kept; leading assistant turns are dropped
    because providers expect a conversation to open with the user.
    """
    kept: list[ChatMessage] = []
    used = 0
    for role, content in reversed(history):
        cost = count_tokens(content) + MESSAGE_OVERHEAD
        if kept and used + cost > budget:
            break
        kept.append(ChatMessage(role=role, content=content))
        used += cost
    kept.reverse()
    while kept and kept[0].role != "user":
        kept.pop(0)
    return kept


def history_budget(*, context_window: int, max_tokens: int, system: str, tools) -> int:
    return (
        context_window
        - max_tokens
        - count_tokens(system)
        - tool_definitions_tokens(tools)
        - SAFETY_MARGIN
    )


def estimate_input_tokens(request: ChatRequest) -> int:
    """Our count of a request's prompt, for calls whose usage the provider never reported."""
    contents = [m.content + "".join(c.arguments for c in m.tool_calls) for m in request.messages]
    return (
        count_tokens(request.system)
        + count_message_tokens(contents)
        + tool_definitions_tokens(request.tools)
    )

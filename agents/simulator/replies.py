"""What a simulated response carries: a planned `Reply` or `Failure`, and the `Output` it bills."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agents.tokens import count_tokens, split_tokens


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # the JSON text exactly as sent, possibly invalid on purpose


@dataclass(frozen=True)
class Reply:
    """What the model says, before ``max_tokens`` is applied, and how fast it says it."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    ttft_s: float = 0.0
    token_delay_s: float = 0.0
    cached_tokens: int = 0
    disconnect: bool = False


@dataclass(frozen=True)
class Failure:
    kind: Literal["rate_limited", "server_error", "context_length"]
    retry_after: float = 0.0


@dataclass(frozen=True)
class Output:
    """The exact content a response carries, and so what it bills."""

    tokens: tuple[str, ...]
    tool_calls: tuple[ToolCall, ...]
    stop: Literal["end", "tool_use", "length"]

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def output_tokens(self) -> int:
        return len(self.tokens) + sum(count_tokens(call.arguments) for call in self.tool_calls)


def finish_reply(reply: Reply, max_tokens: int | None) -> Output:
    """Cut the text at ``max_tokens``; tool calls are never cut (they would not parse)."""
    tokens = tuple(split_tokens(reply.text))
    if reply.tool_calls:
        return Output(tokens=tokens, tool_calls=reply.tool_calls, stop="tool_use")
    if max_tokens is not None and len(tokens) > max_tokens:
        return Output(tokens=tokens[:max_tokens], tool_calls=(), stop="length")
    return Output(tokens=tokens, tool_calls=(), stop="end")

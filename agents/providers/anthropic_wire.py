"""Anthropic Messages over `anthropic.AsyncAnthropic`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from anthropic import AsyncAnthropic

from agents.providers.base import (
    ChatMessage,
    ChatRequest,
    Embeddings,
    Finished,
    ProviderError,
    StreamEvent,
    TextDelta,
    ToolCallReady,
    ToolCallRequest,
    UsageReport,
)
from agents.providers.errors import sdk_stream

_STOP_REASONS = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [
            {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content}
        ]
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            arguments = {}
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
    return blocks


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    """Anthropic wants alternating roles, tool results inside user turns: merge neighbours."""
    merged: list[dict[str, Any]] = []
    for message in request.messages:
        role = "user" if message.role == "tool" else message.role
        blocks = _blocks(message)
        if not blocks:
            continue
        if merged and merged[-1]["role"] == role:
            merged[-1]["content"].extend(blocks)
        else:
            merged.append({"role": role, "content": blocks})
    return merged


class AnthropicWire:
    def __init__(self, client: AsyncAnthropic) -> None:
        self.client = client

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": _messages(request),
            "max_tokens": request.max_tokens,
            # SDK 2.x dropped the typed parameter; the API still reads it (range 0 to 1).
            "extra_body": {"temperature": min(request.temperature, 1.0)},
            "stream": True,
            "timeout": request.timeout,
        }
        if request.system:
            kwargs["system"] = request.system
        if request.tools:
            kwargs["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        tools: dict[int, dict[str, str]] = {}
        stop_reason = "stop"
        async for event in sdk_stream(self.client.messages.create(**kwargs)):
            kind = event.type
            if kind == "message_start":
                usage = event.message.usage
                cached = getattr(usage, "cache_read_input_tokens", None) or 0
                # Output here is a placeholder; message_delta carries the cumulative count.
                yield UsageReport(input_tokens=usage.input_tokens + cached, cached_tokens=cached)
            elif kind == "content_block_start":
                block = event.content_block
                if block.type == "tool_use":
                    tools[event.index] = {"id": block.id, "name": block.name, "json": ""}
            elif kind == "content_block_delta":
                delta = event.delta
                if delta.type == "text_delta":
                    yield TextDelta(delta.text)
                elif delta.type == "input_json_delta" and event.index in tools:
                    tools[event.index]["json"] += delta.partial_json
            elif kind == "content_block_stop" and event.index in tools:
                tool = tools.pop(event.index)
                yield ToolCallReady(ToolCallRequest(tool["id"], tool["name"], tool["json"] or "{}"))
            elif kind == "message_delta":
                if event.delta.stop_reason:
                    stop_reason = _STOP_REASONS.get(
                        event.delta.stop_reason, event.delta.stop_reason
                    )
                if event.usage is not None and event.usage.output_tokens is not None:
                    yield UsageReport(output_tokens=event.usage.output_tokens)
            elif kind == "message_stop":
                yield Finished(stop_reason)

    async def embed(
        self, *, model: str, texts: list[str], dimensions: int | None = None
    ) -> Embeddings:
        raise ProviderError("invalid_request", "Anthropic does not offer an embeddings API.")

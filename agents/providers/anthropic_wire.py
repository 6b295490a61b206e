"""Anthropic Messages over `anthropic.AsyncAnthropic`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anthropic
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
from agents.providers.errors import classified
from agents.providers.sse import body_ended, paced, sse_events, watch_body_end

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
        # The conversation goes as extra_body (see providers/sse.py); SDK 2.x also
        # dropped the typed temperature parameter, which the API still reads (0 to 1).
        body: dict[str, Any] = {
            "messages": _messages(request),
            "temperature": min(request.temperature, 1.0),
        }
        if request.system:
            body["system"] = request.system
        if request.tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": [],
            "max_tokens": request.max_tokens,
            "extra_body": body,
            "stream": True,
            "timeout": request.timeout,
        }
        ended = body_ended()
        async for event in paced(self._reads(kwargs, ended), ended=ended):
            yield event

    async def _reads(
        self, kwargs: dict[str, Any], ended: asyncio.Future
    ) -> AsyncIterator[list[StreamEvent]]:
        """Each network read's events (see sse.paced)."""
        tools: dict[int, dict[str, str]] = {}
        stop_reason = "stop"
        async for batch in classified(self._events(kwargs, ended)):
            out: list[StreamEvent] = []
            for event in batch:
                kind = event.get("type")
                if kind == "message_start":
                    usage = (event.get("message") or {}).get("usage") or {}
                    cached = usage.get("cache_read_input_tokens") or 0
                    # Output here is a placeholder; message_delta carries the cumulative count.
                    input_tokens = (usage.get("input_tokens") or 0) + cached
                    out.append(UsageReport(input_tokens=input_tokens, cached_tokens=cached))
                elif kind == "content_block_start":
                    block = event.get("content_block") or {}
                    if block.get("type") == "tool_use":
                        tool = {"id": block["id"], "name": block["name"], "json": ""}
                        tools[event["index"]] = tool
                elif kind == "content_block_delta":
                    delta = event.get("delta") or {}
                    if delta.get("type") == "text_delta":
                        out.append(TextDelta(delta.get("text") or ""))
                    elif delta.get("type") == "input_json_delta" and event.get("index") in tools:
                        tools[event["index"]]["json"] += delta.get("partial_json") or ""
                elif kind == "content_block_stop" and event.get("index") in tools:
                    tool = tools.pop(event["index"])
                    call = ToolCallRequest(tool["id"], tool["name"], tool["json"] or "{}")
                    out.append(ToolCallReady(call))
                elif kind == "message_delta":
                    reason = (event.get("delta") or {}).get("stop_reason")
                    if reason:
                        stop_reason = _STOP_REASONS.get(reason, reason)
                    output = (event.get("usage") or {}).get("output_tokens")
                    if output is not None:
                        out.append(UsageReport(output_tokens=output))
                elif kind == "message_stop":
                    out.append(Finished(stop_reason))
            yield out

    async def _events(
        self, kwargs: dict[str, Any], ended: asyncio.Future
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """The stream's events as plain dicts, a list per read from the network (see sse.py).

        An `error` event inside the 200 stream raises the SDK's status error, as its own
        stream reader would.
        """
        opening = self.client.messages.with_streaming_response.create(**kwargs)
        async with opening as response:
            watch_body_end(response.http_response, ended)
            reads = response.http_response.aiter_bytes()
            async for datas in sse_events(reads):
                batch = []
                for data in datas:
                    event = json.loads(data) if data else None
                    if not isinstance(event, dict):
                        continue
                    if event.get("type") == "error":
                        if batch:
                            yield batch  # what came before the error in the same read
                        error = event.get("error")
                        message = error.get("message") if isinstance(error, dict) else None
                        raise anthropic.APIStatusError(
                            message or "An error occurred during streaming",
                            response=response.http_response,
                            body=event,
                        )
                    batch.append(event)
                yield batch

    async def embed(
        self, *, model: str, texts: list[str], dimensions: int | None = None
    ) -> Embeddings:
        raise ProviderError("invalid_request", "Anthropic does not offer an embeddings API.")

"""OpenAI Chat Completions over `openai.AsyncOpenAI`: OpenAI and every compatible endpoint."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import openai
from openai import AsyncOpenAI

from agents.providers.base import (
    ChatRequest,
    Embeddings,
    Finished,
    StreamEvent,
    TextDelta,
    ToolCallReady,
    ToolCallRequest,
    UsageReport,
)
from agents.providers.errors import classified, provider_error_from
from agents.providers.sse import body_ended, paced, sse_events, watch_body_end


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for message in request.messages:
        if message.role == "tool":
            messages.append(
                {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
            )
        elif message.role == "assistant" and message.tool_calls:
            messages.append(
                {
                    "role": "assistant",
                    "content": message.content or None,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        }
                        for call in message.tool_calls
                    ],
                }
            )
        else:
            messages.append({"role": message.role, "content": message.content})
    return messages


def _events(chunk: dict[str, Any], calls: dict[int, dict[str, str]]) -> list[StreamEvent]:
    """What one chunk says; tool calls are assembled in `calls` until the choice finishes."""
    events: list[StreamEvent] = []
    usage = chunk.get("usage")
    if usage:
        details = usage.get("prompt_tokens_details") or {}
        events.append(
            UsageReport(
                input_tokens=usage.get("prompt_tokens") or 0,
                output_tokens=usage.get("completion_tokens") or 0,
                cached_tokens=details.get("cached_tokens") or 0,
            )
        )
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content"):
            events.append(TextDelta(delta["content"]))
        for part in delta.get("tool_calls") or ():
            call = calls.setdefault(part.get("index", 0), {"id": "", "name": "", "arguments": ""})
            if part.get("id"):
                call["id"] = part["id"]
            function = part.get("function") or {}
            call["name"] += function.get("name") or ""
            call["arguments"] += function.get("arguments") or ""
        if choice.get("finish_reason"):
            for index in sorted(calls):
                call = calls[index]
                call_id = call["id"] or f"call_{index}_{uuid.uuid4().hex[:12]}"
                events.append(
                    ToolCallReady(ToolCallRequest(call_id, call["name"], call["arguments"] or "{}"))
                )
            calls.clear()
            events.append(Finished(choice["finish_reason"]))
    return events


class OpenAIWire:
    def __init__(self, client: AsyncOpenAI, *, max_tokens_param: str = "max_tokens") -> None:
        self.client = client
        # OpenAI's newer models want max_completion_tokens; most compatible servers max_tokens.
        self.max_tokens_param = max_tokens_param

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        # The conversation goes as extra_body (see providers/sse.py).
        body: dict[str, Any] = {"messages": _messages(request)}
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": [],
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": request.temperature,
            self.max_tokens_param: request.max_tokens,
            "timeout": request.timeout,
            "extra_body": body,
        }
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                }
                for tool in request.tools
            ]
        ended = body_ended()
        async for event in paced(self._reads(kwargs, ended), ended=ended):
            yield event

    async def _reads(
        self, kwargs: dict[str, Any], ended: asyncio.Future
    ) -> AsyncIterator[list[StreamEvent]]:
        """Each network read's events (see sse.paced)."""
        calls: dict[int, dict[str, str]] = {}
        async for batch in classified(self._chunks(kwargs, ended)):
            yield [event for chunk in batch for event in _events(chunk, calls)]

    async def _chunks(
        self, kwargs: dict[str, Any], ended: asyncio.Future
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """The stream's chunks as plain dicts, a list per read from the network.

        The SDK sends the request (auth, retries, status errors); the chunks are read from
        its streaming response's bytes rather than built into typed models line by line:
        a model per token cost more CPU than everything else a streamed token goes through.
        """
        opening = self.client.chat.completions.with_streaming_response.create(**kwargs)
        async with opening as response:
            watch_body_end(response.http_response, ended)
            reads = response.http_response.aiter_bytes()
            async for events in sse_events(reads):
                chunks = []
                for data in events:
                    if data.startswith("[DONE]"):
                        yield chunks
                        return
                    if not data:
                        continue
                    chunk = json.loads(data)
                    if isinstance(chunk, dict) and chunk.get("error"):
                        if chunks:
                            yield chunks  # what came before the error in the same read
                        error = chunk["error"]
                        message = error.get("message") if isinstance(error, dict) else None
                        raise openai.APIError(
                            message=message or "An error occurred during streaming",
                            request=response.http_request,
                            body=error,
                        )
                    chunks.append(chunk)
                yield chunks

    async def embed(
        self, *, model: str, texts: list[str], dimensions: int | None = None
    ) -> Embeddings:
        kwargs: dict[str, Any] = {"model": model, "input": texts}
        if dimensions:
            kwargs["dimensions"] = dimensions
        try:
            response = await self.client.embeddings.create(**kwargs)
        except Exception as exc:
            raise provider_error_from(exc) from exc
        vectors = [item.embedding for item in sorted(response.data, key=lambda d: d.index)]
        return Embeddings(vectors=vectors, input_tokens=response.usage.prompt_tokens)

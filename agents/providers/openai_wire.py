"""OpenAI Chat Completions over `openai.AsyncOpenAI`: OpenAI and every compatible endpoint."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

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
from agents.providers.errors import provider_error_from, sdk_stream


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


class OpenAIWire:
    def __init__(self, client: AsyncOpenAI, *, max_tokens_param: str = "max_tokens") -> None:
        self.client = client
        # OpenAI's newer models want max_completion_tokens; most compatible servers max_tokens.
        self.max_tokens_param = max_tokens_param

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": _messages(request),
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": request.temperature,
            self.max_tokens_param: request.max_tokens,
            "timeout": request.timeout,
        }
        if request.tools:
            kwargs["tools"] = [
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
        calls: dict[int, dict[str, str]] = {}
        async for chunk in sdk_stream(self.client.chat.completions.create(**kwargs)):
            if chunk.usage is not None:
                details = chunk.usage.prompt_tokens_details
                yield UsageReport(
                    input_tokens=chunk.usage.prompt_tokens,
                    output_tokens=chunk.usage.completion_tokens,
                    cached_tokens=(details.cached_tokens or 0) if details else 0,
                )
            for choice in chunk.choices:
                delta = choice.delta
                if delta is not None and delta.content:
                    yield TextDelta(delta.content)
                for part in (delta.tool_calls if delta is not None else None) or []:
                    call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
                    if part.id:
                        call["id"] = part.id
                    if part.function is not None:
                        call["name"] += part.function.name or ""
                        call["arguments"] += part.function.arguments or ""
                if choice.finish_reason:
                    for index in sorted(calls):
                        call = calls[index]
                        call_id = call["id"] or f"call_{index}_{uuid.uuid4().hex[:12]}"
                        yield ToolCallReady(
                            ToolCallRequest(call_id, call["name"], call["arguments"] or "{}")
                        )
                    calls.clear()
                    yield Finished(choice.finish_reason)

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

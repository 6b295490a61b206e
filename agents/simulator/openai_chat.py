"""The OpenAI Chat Completions wire: ``POST /v1/chat/completions``, streamed or whole."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from agents.simulator.conversation import conversation_from_openai
from agents.simulator.errors import Rejected
from agents.simulator.exchange import (
    Exchange,
    Pacer,
    drop_connection,
    log_usage,
    max_tokens_of,
    new_id,
    plan_exchange,
    read_request,
)
from agents.simulator.replies import ToolCall
from agents.simulator.sse import send_event, split_json, start_stream

OPENAI_FINISH = {"end": "stop", "tool_use": "tool_calls", "length": "length"}


def _openai_usage(exchange: Exchange) -> dict[str, Any]:
    completion = exchange.output.output_tokens
    return {
        "prompt_tokens": exchange.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": exchange.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": exchange.reply.cached_tokens},
    }


async def chat_completions(request: web.Request) -> web.StreamResponse:
    try:
        body, scenario = await read_request(request, wire="openai")
        exchange = plan_exchange(
            request,
            body,
            scenario,
            wire="openai",
            conversation_from=conversation_from_openai,
            max_tokens=max_tokens_of(body, "max_completion_tokens", "max_tokens"),
        )
    except Rejected as rejected:
        return rejected.openai_response()
    if exchange.stream:
        return await _openai_stream(request, exchange)
    return await _openai_whole(request, exchange)


def _openai_tool_call(index: int, call: ToolCall, call_id: str) -> dict[str, Any]:
    return {
        "index": index,
        "id": call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": ""},
    }


async def _openai_stream(request: web.Request, exchange: Exchange) -> web.StreamResponse:
    response_id = new_id("chatcmpl-")
    created = int(time.time())
    output, pacer = exchange.output, Pacer(exchange.reply)
    response = await start_stream(request, {"x-request-id": new_id("req_")})

    async def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> None:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        await send_event(
            response,
            {
                "id": response_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": exchange.model,
                "system_fingerprint": None,
                "choices": [choice],
            },
        )

    await chunk({"role": "assistant", "content": ""})
    for token in exchange.sent_tokens:
        await pacer.next()
        await chunk({"content": token})
    if exchange.reply.disconnect:
        await drop_connection(request)
        return response
    for index, call in enumerate(output.tool_calls):
        await pacer.next()
        await chunk({"tool_calls": [_openai_tool_call(index, call, new_id("call_"))]})
        for piece in split_json(call.arguments):
            await pacer.next()
            await chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    await chunk({}, OPENAI_FINISH[output.stop])
    stream_options = exchange.body.get("stream_options") or {}
    if isinstance(stream_options, dict) and stream_options.get("include_usage"):
        await send_event(
            response,
            {
                "id": response_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": exchange.model,
                "system_fingerprint": None,
                "choices": [],
                "usage": _openai_usage(exchange),
            },
        )
        log_usage(request, exchange, wire="openai", response_id=response_id)
    await send_event(response, "[DONE]")
    await response.write_eof()
    return response


async def _openai_whole(request: web.Request, exchange: Exchange) -> web.StreamResponse:
    output = exchange.output
    await Pacer(exchange.reply).whole(len(output.tokens) + len(output.tool_calls))
    if exchange.reply.disconnect:
        await drop_connection(request)
        return web.Response()
    response_id = new_id("chatcmpl-")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": output.text if output.text or not output.tool_calls else None,
        "refusal": None,
    }
    if output.tool_calls:
        message["tool_calls"] = [
            {
                "id": new_id("call_"),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in output.tool_calls
        ]
    body = {
        "id": response_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": exchange.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": OPENAI_FINISH[output.stop],
            }
        ],
        "usage": _openai_usage(exchange),
    }
    log_usage(request, exchange, wire="openai", response_id=response_id)
    return web.json_response(body, headers={"x-request-id": new_id("req_")})

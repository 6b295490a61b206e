"""The Anthropic Messages wire: ``POST /v1/messages``, streamed or whole."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from agents.simulator.conversation import conversation_from_anthropic
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

ANTHROPIC_STOP = {"end": "end_turn", "tool_use": "tool_use", "length": "max_tokens"}


def _anthropic_usage(exchange: Exchange, output_tokens: int) -> dict[str, Any]:
    cached = exchange.reply.cached_tokens
    return {
        "input_tokens": exchange.prompt_tokens - cached,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def _tool_input(call: ToolCall) -> Any:
    """The ``input`` object of a tool_use block; arguments that are not an object stay raw text."""
    try:
        value = json.loads(call.arguments)
    except ValueError:
        return call.arguments
    return value if isinstance(value, dict) else call.arguments


async def messages(request: web.Request) -> web.StreamResponse:
    try:
        body, scenario = await read_request(request, wire="anthropic")
        exchange = plan_exchange(
            request,
            body,
            scenario,
            wire="anthropic",
            conversation_from=conversation_from_anthropic,
            max_tokens=max_tokens_of(body, "max_tokens"),
        )
    except Rejected as rejected:
        return rejected.anthropic_response()
    if exchange.stream:
        return await _anthropic_stream(request, exchange)
    return await _anthropic_whole(request, exchange)


async def _anthropic_stream(request: web.Request, exchange: Exchange) -> web.StreamResponse:
    message_id = new_id("msg_")
    output, pacer = exchange.output, Pacer(exchange.reply)
    response = await start_stream(request, {"request-id": new_id("req_")})

    async def send(event: str, data: dict[str, Any]) -> None:
        await send_event(response, {"type": event, **data}, event=event)

    message = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": exchange.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _anthropic_usage(exchange, 1),
    }
    await send("message_start", {"message": message})
    index = 0
    if output.tokens or not output.tool_calls:
        await send(
            "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
        )
        for token in exchange.sent_tokens:
            await pacer.next()
            delta = {"type": "text_delta", "text": token}
            await send("content_block_delta", {"index": 0, "delta": delta})
        if exchange.reply.disconnect:
            await drop_connection(request)
            return response
        await send("content_block_stop", {"index": 0})
        index = 1
    for call in output.tool_calls:
        await pacer.next()
        block = {"type": "tool_use", "id": new_id("toolu_"), "name": call.name, "input": {}}
        await send("content_block_start", {"index": index, "content_block": block})
        for piece in split_json(call.arguments):
            await pacer.next()
            delta = {"type": "input_json_delta", "partial_json": piece}
            await send("content_block_delta", {"index": index, "delta": delta})
        await send("content_block_stop", {"index": index})
        index += 1
    await send(
        "message_delta",
        {
            "delta": {"stop_reason": ANTHROPIC_STOP[output.stop], "stop_sequence": None},
            "usage": {"output_tokens": output.output_tokens},
        },
    )
    await send("message_stop", {})
    log_usage(request, exchange, wire="anthropic", response_id=message_id)
    await response.write_eof()
    return response


async def _anthropic_whole(request: web.Request, exchange: Exchange) -> web.StreamResponse:
    output = exchange.output
    await Pacer(exchange.reply).whole(len(output.tokens) + len(output.tool_calls))
    if exchange.reply.disconnect:
        await drop_connection(request)
        return web.Response()
    message_id = new_id("msg_")
    content: list[dict[str, Any]] = []
    if output.tokens or not output.tool_calls:
        content.append({"type": "text", "text": output.text})
    content += [
        {"type": "tool_use", "id": new_id("toolu_"), "name": call.name, "input": _tool_input(call)}
        for call in output.tool_calls
    ]
    body = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": exchange.model,
        "content": content,
        "stop_reason": ANTHROPIC_STOP[output.stop],
        "stop_sequence": None,
        "usage": _anthropic_usage(exchange, output.output_tokens),
    }
    log_usage(request, exchange, wire="anthropic", response_id=message_id)
    return web.json_response(body, headers={"request-id": new_id("req_")})

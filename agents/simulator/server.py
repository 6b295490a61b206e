"""An aiohttp server that speaks the OpenAI and Anthropic wire formats, for tests and demos.

No LLM API is reachable from where Parley is built and tested, so the real SDKs talk to
this over HTTP instead: the bytes on the wire (SSE framing, error bodies, status codes,
``retry-after``) match the real APIs closely enough that the official clients parse them,
which is what lets the platform's provider code be tested without mocks. What is said is
decided in `scenarios`; this module only renders it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

from agents.simulator import scenarios
from agents.simulator.scenarios import Failure, Output, Reply, Scenario
from agents.tokens import count_tokens

SCENARIO_HEADER = "X-Simulator-Scenario"
OPENAI_CONTEXT_LIMIT = 128_000
ANTHROPIC_CONTEXT_LIMIT = 200_000
EMBEDDING_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}
DEFAULT_EMBEDDING_DIMENSIONS = 384
OPENAI_FINISH = {"end": "stop", "tool_use": "tool_calls", "length": "length"}
ANTHROPIC_STOP = {"end": "end_turn", "tool_use": "tool_use", "length": "max_tokens"}


@dataclass
class SimulatorConfig:
    ttft_ms: float = 0.0  # default delay before the first token
    tokens_per_second: float = 0.0  # 0 = no delay between tokens


@dataclass(frozen=True)
class ReportedUsage:
    """Exactly what one response told the client, so tests can compare the platform's meter.

    ``input_tokens`` is the whole prompt (for Anthropic: input + cache reads), and
    ``cached_tokens`` the part of it served from the cache.
    """

    wire: str
    model: str
    response_id: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int


@dataclass
class SimulatorState:
    """Logs shared with the test thread; list appends are atomic, the counters take a lock.

    ``record=False`` keeps nothing, so a long-running demo or benchmark server stays flat.
    """

    config: SimulatorConfig = field(default_factory=SimulatorConfig)
    record: bool = True
    usage_log: list[ReportedUsage] = field(default_factory=list)
    request_log: list[dict[str, Any]] = field(default_factory=list)
    attempts: dict[tuple[str, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_attempt(self, scenario: Scenario, fingerprint: str) -> int:
        """Count tries of one request; only the ``*_once`` scenarios need it, so only they count."""
        if scenario.name not in scenarios.COUNTED_SCENARIOS:
            return 1
        with self.lock:
            count = self.attempts.get((scenario.name, fingerprint), 0) + 1
            self.attempts[(scenario.name, fingerprint)] = count
            return count

    def log_request(self, entry: dict[str, Any]) -> None:
        if self.record:
            self.request_log.append(entry)

    def log_usage(self, usage: ReportedUsage) -> None:
        if self.record:
            self.usage_log.append(usage)

    def clear(self) -> None:
        with self.lock:
            self.usage_log.clear()
            self.request_log.clear()
            self.attempts.clear()


STATE = web.AppKey("simulator_state", SimulatorState)


class Rejected(Exception):
    """A request answered with an error body instead of a completion."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        openai_type: str = "invalid_request_error",
        anthropic_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.openai_type = openai_type
        self.anthropic_type = anthropic_type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def openai_response(self) -> web.Response:
        error = {
            "message": self.message,
            "type": self.openai_type,
            "param": self.param,
            "code": self.code,
        }
        return web.json_response({"error": error}, status=self.status, headers=self.headers)

    def anthropic_response(self) -> web.Response:
        body = {"type": "error", "error": {"type": self.anthropic_type, "message": self.message}}
        return web.json_response(body, status=self.status, headers=self.headers)


def _failure(failure: Failure, *, wire: str, prompt_tokens: int) -> Rejected:
    if failure.kind == "rate_limited":
        retry_after = f"{failure.retry_after:g}"
        return Rejected(
            429,
            "Rate limit reached for requests (simulated).",
            openai_type="requests",
            anthropic_type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"retry-after": retry_after},
        )
    if failure.kind == "server_error":
        if wire == "anthropic":
            return Rejected(529, "Overloaded", anthropic_type="overloaded_error")
        return Rejected(
            500,
            "The server had an error while processing your request.",
            openai_type="server_error",
        )
    if wire == "anthropic":
        message = f"prompt is too long: {prompt_tokens} tokens > {ANTHROPIC_CONTEXT_LIMIT} maximum"
        return Rejected(400, message)
    message = (
        f"This model's maximum context length is {OPENAI_CONTEXT_LIMIT} tokens. "
        f"However, your messages resulted in {prompt_tokens} tokens."
    )
    return Rejected(400, message, code="context_length_exceeded", param="messages")


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


async def _read_request(request: web.Request, *, wire: str) -> tuple[dict[str, Any], Scenario]:
    """Parse, log and authenticate a request, and pick its scenario (the header wins)."""
    try:
        body = await request.json()
    except ValueError:
        raise Rejected(400, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise Rejected(400, "The request body must be a JSON object.")
    model = body.get("model")
    base_model, suffix = scenarios.split_model(model) if isinstance(model, str) else ("", None)
    scenario: Scenario | None = None
    problem = ""
    try:
        scenario = scenarios.parse_scenario(request.headers.get(SCENARIO_HEADER) or suffix)
    except ValueError as error:
        problem = str(error)
    request.app[STATE].log_request(
        {"wire": wire, "model": model, "scenario": scenario.name if scenario else "", "body": body}
    )
    if "Authorization" not in request.headers and "x-api-key" not in request.headers:
        raise Rejected(
            401,
            "Missing API key: send an Authorization or x-api-key header.",
            anthropic_type="authentication_error",
            code="invalid_api_key",
        )
    if not isinstance(model, str) or not base_model:
        raise Rejected(400, "'model' must be a non-empty string.", param="model")
    if scenario is None:
        raise Rejected(400, problem, param="model")
    return body, scenario


def _max_tokens(body: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise Rejected(400, f"'{key}' must be a non-negative integer.", param=key)
        return value
    return None


@dataclass(frozen=True)
class _Exchange:
    """One planned completion: what to send, and the bookkeeping around it."""

    body: dict[str, Any]
    model: str
    reply: Reply
    output: Output
    prompt_tokens: int
    stream: bool

    @property
    def sent_tokens(self) -> tuple[str, ...]:
        """The text tokens actually sent: a dropped connection cuts the answer in half."""
        tokens = self.output.tokens
        return tokens[: len(tokens) // 2] if self.reply.disconnect else tokens


def _plan(
    request: web.Request,
    body: dict[str, Any],
    scenario: Scenario,
    *,
    wire: str,
    conversation_from: Callable[[dict[str, Any]], scenarios.Conversation],
    max_tokens: int | None,
) -> _Exchange:
    try:
        conversation = conversation_from(body)
    except ValueError as error:
        raise Rejected(400, str(error), param="messages") from None
    base_model, _ = scenarios.split_model(body["model"])
    fingerprint = scenarios.fingerprint(
        wire=wire, model=base_model, messages=body["messages"], system=body.get("system")
    )
    state = request.app[STATE]
    try:
        plan = scenarios.plan_reply(
            scenario,
            conversation,
            seed=fingerprint,
            attempt=state.next_attempt(scenario, fingerprint),
            ttft_ms=state.config.ttft_ms,
            tokens_per_second=state.config.tokens_per_second,
        )
    except ValueError as error:  # a malformed scenario parameter
        raise Rejected(400, str(error), param="model") from None
    prompt_tokens = conversation.prompt_tokens
    if isinstance(plan, Failure):
        raise _failure(plan, wire=wire, prompt_tokens=prompt_tokens)
    return _Exchange(
        body=body,
        model=body["model"],
        reply=plan,
        output=scenarios.finish_reply(plan, max_tokens),
        prompt_tokens=prompt_tokens,
        stream=bool(body.get("stream")),
    )


class _Pacer:
    """Sleeps the time-to-first-token once, then the inter-token gap before each later piece."""

    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._started = False

    async def next(self) -> None:
        delay = self._reply.token_delay_s if self._started else self._reply.ttft_s
        self._started = True
        if delay > 0:
            await asyncio.sleep(delay)

    async def whole(self, pieces: int) -> None:
        """The time a non-streamed answer of ``pieces`` pieces would take to generate."""
        delay = self._reply.ttft_s + max(0, pieces - 1) * self._reply.token_delay_s
        if delay > 0:
            await asyncio.sleep(delay)


async def _drop_connection(request: web.Request) -> None:
    """Close the TCP connection mid-answer, with no closing event, usage or [DONE].

    ``close()`` (not ``abort()``) flushes what was already written first; aiohttp then
    finds the transport gone when finishing the response and treats it as a lost client.
    """
    if request.transport is not None:
        request.transport.close()
    await asyncio.sleep(0)


async def _start_stream(request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers}
    )
    await response.prepare(request)
    return response


async def _send_event(
    response: web.StreamResponse, data: dict[str, Any] | str, event: str | None = None
) -> None:
    payload = data if isinstance(data, str) else json.dumps(data)
    prefix = f"event: {event}\n" if event else ""
    await response.write(f"{prefix}data: {payload}\n\n".encode())


# OpenAI Chat Completions ------------------------------------------------------------------


def _openai_usage(exchange: _Exchange) -> dict[str, Any]:
    completion = exchange.output.output_tokens
    return {
        "prompt_tokens": exchange.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": exchange.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": exchange.reply.cached_tokens},
    }


def _log_usage(request: web.Request, exchange: _Exchange, *, wire: str, response_id: str) -> None:
    request.app[STATE].log_usage(
        ReportedUsage(
            wire=wire,
            model=exchange.model,
            response_id=response_id,
            input_tokens=exchange.prompt_tokens,
            output_tokens=exchange.output.output_tokens,
            cached_tokens=exchange.reply.cached_tokens,
        )
    )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    try:
        body, scenario = await _read_request(request, wire="openai")
        exchange = _plan(
            request,
            body,
            scenario,
            wire="openai",
            conversation_from=scenarios.conversation_from_openai,
            max_tokens=_max_tokens(body, "max_completion_tokens", "max_tokens"),
        )
    except Rejected as rejected:
        return rejected.openai_response()
    if exchange.stream:
        return await _openai_stream(request, exchange)
    return await _openai_whole(request, exchange)


def _openai_tool_call(index: int, call: scenarios.ToolCall, call_id: str) -> dict[str, Any]:
    return {
        "index": index,
        "id": call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": ""},
    }


async def _openai_stream(request: web.Request, exchange: _Exchange) -> web.StreamResponse:
    response_id = _new_id("chatcmpl-")
    created = int(time.time())
    output, pacer = exchange.output, _Pacer(exchange.reply)
    response = await _start_stream(request, {"x-request-id": _new_id("req_")})

    async def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> None:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        await _send_event(
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
        await _drop_connection(request)
        return response
    for index, call in enumerate(output.tool_calls):
        await pacer.next()
        await chunk({"tool_calls": [_openai_tool_call(index, call, _new_id("call_"))]})
        for piece in scenarios.split_json(call.arguments):
            await pacer.next()
            await chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    await chunk({}, OPENAI_FINISH[output.stop])
    stream_options = exchange.body.get("stream_options") or {}
    if isinstance(stream_options, dict) and stream_options.get("include_usage"):
        await _send_event(
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
        _log_usage(request, exchange, wire="openai", response_id=response_id)
    await _send_event(response, "[DONE]")
    await response.write_eof()
    return response


async def _openai_whole(request: web.Request, exchange: _Exchange) -> web.StreamResponse:
    output = exchange.output
    await _Pacer(exchange.reply).whole(len(output.tokens) + len(output.tool_calls))
    if exchange.reply.disconnect:
        await _drop_connection(request)
        return web.Response()
    response_id = _new_id("chatcmpl-")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": output.text if output.text or not output.tool_calls else None,
        "refusal": None,
    }
    if output.tool_calls:
        message["tool_calls"] = [
            {
                "id": _new_id("call_"),
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
    _log_usage(request, exchange, wire="openai", response_id=response_id)
    return web.json_response(body, headers={"x-request-id": _new_id("req_")})


# Anthropic Messages -----------------------------------------------------------------------


def _anthropic_usage(exchange: _Exchange, output_tokens: int) -> dict[str, Any]:
    cached = exchange.reply.cached_tokens
    return {
        "input_tokens": exchange.prompt_tokens - cached,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def _tool_input(call: scenarios.ToolCall) -> Any:
    """The ``input`` object of a tool_use block; arguments that are not an object stay raw text."""
    try:
        value = json.loads(call.arguments)
    except ValueError:
        return call.arguments
    return value if isinstance(value, dict) else call.arguments


async def messages(request: web.Request) -> web.StreamResponse:
    try:
        body, scenario = await _read_request(request, wire="anthropic")
        exchange = _plan(
            request,
            body,
            scenario,
            wire="anthropic",
            conversation_from=scenarios.conversation_from_anthropic,
            max_tokens=_max_tokens(body, "max_tokens"),
        )
    except Rejected as rejected:
        return rejected.anthropic_response()
    if exchange.stream:
        return await _anthropic_stream(request, exchange)
    return await _anthropic_whole(request, exchange)


async def _anthropic_stream(request: web.Request, exchange: _Exchange) -> web.StreamResponse:
    message_id = _new_id("msg_")
    output, pacer = exchange.output, _Pacer(exchange.reply)
    response = await _start_stream(request, {"request-id": _new_id("req_")})

    async def send(event: str, data: dict[str, Any]) -> None:
        await _send_event(response, {"type": event, **data}, event=event)

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
            await _drop_connection(request)
            return response
        await send("content_block_stop", {"index": 0})
        index = 1
    for call in output.tool_calls:
        await pacer.next()
        block = {"type": "tool_use", "id": _new_id("toolu_"), "name": call.name, "input": {}}
        await send("content_block_start", {"index": index, "content_block": block})
        for piece in scenarios.split_json(call.arguments):
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
    _log_usage(request, exchange, wire="anthropic", response_id=message_id)
    await response.write_eof()
    return response


async def _anthropic_whole(request: web.Request, exchange: _Exchange) -> web.StreamResponse:
    output = exchange.output
    await _Pacer(exchange.reply).whole(len(output.tokens) + len(output.tool_calls))
    if exchange.reply.disconnect:
        await _drop_connection(request)
        return web.Response()
    message_id = _new_id("msg_")
    content: list[dict[str, Any]] = []
    if output.tokens or not output.tool_calls:
        content.append({"type": "text", "text": output.text})
    content += [
        {"type": "tool_use", "id": _new_id("toolu_"), "name": call.name, "input": _tool_input(call)}
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
    _log_usage(request, exchange, wire="anthropic", response_id=message_id)
    return web.json_response(body, headers={"request-id": _new_id("req_")})


# Embeddings -------------------------------------------------------------------------------


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector derived from the text alone: the same text always embeds the same.

    shake_256 is an extendable-output hash, so one call yields as many bytes as the
    dimensions need, and a shorter vector is a prefix of a longer one before normalising.
    """
    raw = hashlib.shake_256(text.encode()).digest(4 * dimensions)
    values = [(word / 2**31) - 1.0 for word in struct.unpack(f">{dimensions}I", raw)]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    return [value / norm for value in values]


async def embeddings(request: web.Request) -> web.Response:
    try:
        body, scenario = await _read_request(request, wire="embeddings")
        return _embed(request, body, scenario)
    except Rejected as rejected:
        return rejected.openai_response()


def _embed(request: web.Request, body: dict[str, Any], scenario: Scenario) -> web.Response:
    texts = body.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise Rejected(400, "'input' must be a string or a list of strings.", param="input")
    model = body["model"]
    base_model, _ = scenarios.split_model(model)
    default_dimensions = EMBEDDING_DIMENSIONS.get(base_model, DEFAULT_EMBEDDING_DIMENSIONS)
    dimensions = body.get("dimensions") or default_dimensions
    if not isinstance(dimensions, int) or not 0 < dimensions <= default_dimensions:
        message = f"'dimensions' must be between 1 and {default_dimensions} for this model."
        raise Rejected(400, message, param="dimensions")
    fingerprint = scenarios.fingerprint(wire="embeddings", model=base_model, messages=texts)
    attempt = request.app[STATE].next_attempt(scenario, fingerprint)
    prompt_tokens = sum(count_tokens(text) for text in texts)
    try:
        failure = scenarios.plan_failure(scenario, attempt=attempt)
    except ValueError as error:
        raise Rejected(400, str(error), param="model") from None
    if failure is not None:
        raise _failure(failure, wire="openai", prompt_tokens=prompt_tokens)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector: Any = embedding_vector(text, dimensions)
        if as_base64:
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    response_id = _new_id("emb-")
    request.app[STATE].log_usage(
        ReportedUsage(
            wire="embeddings",
            model=model,
            response_id=response_id,
            input_tokens=prompt_tokens,
            output_tokens=0,
            cached_tokens=0,
        )
    )
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    body = {"object": "list", "data": data, "model": model, "usage": usage}
    return web.json_response(body, headers={"x-request-id": response_id})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def build_app(
    config: SimulatorConfig | None = None, *, state: SimulatorState | None = None
) -> web.Application:
    """The simulator as an aiohttp application; pass ``state`` to read its logs from outside."""
    app = web.Application()
    app[STATE] = state or SimulatorState(config=config or SimulatorConfig())
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/healthz", healthz)
    return app


class SimulatorThread:
    """Runs the simulator on 127.0.0.1 in a background thread with its own event loop.

    A thread (not a task on the test's loop) so synchronous code and tests with any event
    loop can use it, and so a test that blocks its own loop cannot stall the server.
    """

    def __init__(
        self, *, config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.state = SimulatorState(config=config or SimulatorConfig())
        self._socket = socket.create_server((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="provider-simulator", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def usage_log(self) -> list[ReportedUsage]:
        return self.state.usage_log

    @property
    def request_log(self) -> list[dict[str, Any]]:
        return self.state.request_log

    def clear(self) -> None:
        self.state.clear()

    def start(self) -> Self:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError("The provider simulator failed to start") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread.ident is not None:
            self._thread.join()
        self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # Streams cut short by a test must not hold shutdown for aiohttp's default minute.
        runner = web.AppRunner(build_app(state=self.state), shutdown_timeout=0.5)
        try:
            await runner.setup()
            await web.SockSite(runner, self._socket).start()
        except Exception as error:
            self._error = error
            self._ready.set()
            await runner.cleanup()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

"""One chat completion on either wire: read and check the request, plan the answer, pace it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from agents.simulator.behaviours import plan_reply
from agents.simulator.conversation import Conversation, fingerprint
from agents.simulator.errors import Rejected, rejection_for
from agents.simulator.replies import Failure, Output, Reply, finish_reply
from agents.simulator.scenario import SCENARIO_HEADER, Scenario, parse_scenario, split_model
from agents.simulator.state import STATE, ReportedUsage


def new_id(prefix: str) -> str:
    """An id shaped like the real API's (``chatcmpl-…``, ``msg_…``), unique per response."""
    return prefix + uuid.uuid4().hex[:24]


async def read_request(request: web.Request, *, wire: str) -> tuple[dict[str, Any], Scenario]:
    """Parse, log and authenticate a request, and pick its scenario (the header wins)."""
    try:
        body = await request.json()
    except ValueError:
        raise Rejected(400, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise Rejected(400, "The request body must be a JSON object.")
    model = body.get("model")
    base_model, suffix = split_model(model) if isinstance(model, str) else ("", None)
    scenario: Scenario | None = None
    problem = ""
    try:
        scenario = parse_scenario(request.headers.get(SCENARIO_HEADER) or suffix)
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


def max_tokens_of(body: dict[str, Any], *keys: str) -> int | None:
    """The first of ``keys`` the body sets, checked as the real APIs check it."""
    for key in keys:
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise Rejected(400, f"'{key}' must be a non-negative integer.", param=key)
        return value
    return None


@dataclass(frozen=True)
class Exchange:
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


def plan_exchange(
    request: web.Request,
    body: dict[str, Any],
    scenario: Scenario,
    *,
    wire: str,
    conversation_from: Callable[[dict[str, Any]], Conversation],
    max_tokens: int | None,
) -> Exchange:
    """Read the conversation and decide its answer; a planned failure is raised as `Rejected`."""
    try:
        conversation = conversation_from(body)
    except ValueError as error:
        raise Rejected(400, str(error), param="messages") from None
    base_model, _ = split_model(body["model"])
    digest = fingerprint(
        wire=wire, model=base_model, messages=body["messages"], system=body.get("system")
    )
    state = request.app[STATE]
    try:
        plan = plan_reply(
            scenario,
            conversation,
            seed=digest,
            attempt=state.next_attempt(scenario, digest),
            ttft_ms=state.config.ttft_ms,
            tokens_per_second=state.config.tokens_per_second,
        )
    except ValueError as error:  # a malformed scenario parameter
        raise Rejected(400, str(error), param="model") from None
    prompt_tokens = conversation.prompt_tokens
    if isinstance(plan, Failure):
        raise rejection_for(plan, wire=wire, prompt_tokens=prompt_tokens)
    return Exchange(
        body=body,
        model=body["model"],
        reply=plan,
        output=finish_reply(plan, max_tokens),
        prompt_tokens=prompt_tokens,
        stream=bool(body.get("stream")),
    )


class Pacer:
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


async def drop_connection(request: web.Request) -> None:
    """Close the TCP connection mid-answer, with no closing event, usage or [DONE].

    ``close()`` (not ``abort()``) flushes what was already written first; aiohttp then
    finds the transport gone when finishing the response and treats it as a lost client.
    """
    if request.transport is not None:
        request.transport.close()
    await asyncio.sleep(0)


def log_usage(request: web.Request, exchange: Exchange, *, wire: str, response_id: str) -> None:
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

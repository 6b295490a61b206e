"""One provider call, as both the agent loop and thread titles make it: the model chosen,
what came back, what it used and cost at worst, and when to try again."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

from django.conf import settings

from agents import catalog
from agents.engine.context import estimate_input_tokens
from agents.providers import (
    ChatRequest,
    Endpoint,
    ProviderError,
    ToolCallRequest,
    UsageReport,
    resolve_endpoint,
)
from agents.providers.registry import StoredCredential
from agents.tokens import count_tokens
from billing.services import Usage

LEDGER_NAMESPACE = uuid.UUID("6f1c3a52-57a4-4c55-9d0e-6b0a1f6c2e11")


def backoff_delay(attempt: int, error: ProviderError) -> float:
    """Seconds to wait before retry `attempt` + 1: exponential with jitter, at least what the
    provider asked for (Retry-After), never over PARLEY_RETRY_MAX_DELAY."""
    base, ceiling = settings.PARLEY_RETRY_BASE_DELAY, settings.PARLEY_RETRY_MAX_DELAY
    delay = min(ceiling, base * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311
    if error.retry_after is not None:
        delay = min(ceiling, max(delay, error.retry_after))
    return delay


@dataclass(frozen=True)
class ModelChoice:
    endpoint: Endpoint
    info: catalog.ModelInfo
    model: str  # as sent, scenario suffix included


@dataclass
class CallResult:
    """One provider call: what streamed, how it ended, and what it cost in tokens."""

    text: str = ""
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    finish: str = ""
    error: ProviderError | None = None
    stopped: bool = False
    streamed: bool = False  # any event arrived: the provider accepted the request
    produced: bool = False  # text or a tool call arrived: a retry would repeat them
    refused: str = ""  # the call was never made: the budget is used up


def model_choice(
    provider: str, model: str, credentials: dict[str, StoredCredential]
) -> ModelChoice:
    info = catalog.get_model(provider, model)
    if info is None:
        raise ProviderError("invalid_request", f"{provider}/{model} is not in the catalog.")
    return ModelChoice(resolve_endpoint(provider, credentials=credentials), info, model)


def measured_usage(request: ChatRequest, result: CallResult, reported: UsageReport) -> Usage:
    """What the provider reported, else our own count; a refused request costs nothing."""
    if result.error is not None and not result.streamed:
        return Usage(exact=True)
    exact = reported.input_tokens is not None and reported.output_tokens is not None
    output = reported.output_tokens
    if output is None:
        output = count_tokens(result.text) + sum(
            count_tokens(call.arguments) for call in result.tool_calls
        )
    input_tokens = reported.input_tokens
    if input_tokens is None:
        input_tokens = estimate_input_tokens(request)
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output,
        cached_tokens=reported.cached_tokens or 0,
        exact=exact,
    )


def worst_case(request: ChatRequest) -> Usage:
    """The most a call may use: its prompt and all the output it may write."""
    return Usage(input_tokens=estimate_input_tokens(request), output_tokens=request.max_tokens)


def merged_report(old: UsageReport, new: UsageReport) -> UsageReport:
    """A provider reports usage in parts (input first, output at the end): keep the latest."""
    return UsageReport(
        input_tokens=_first(new.input_tokens, old.input_tokens),
        output_tokens=_first(new.output_tokens, old.output_tokens),
        cached_tokens=_first(new.cached_tokens, old.cached_tokens),
    )


def _first(new: int | None, old: int | None) -> int | None:
    return new if new is not None else old

"""Thread titles: after a thread's first exchange, one short model call names it.

The call is metered like any other (a ledger row with purpose "title", whatever its end).
It uses PARLEY_TITLE_MODEL ("provider/model") when set, else the thread's agent's model.
A call that fails for a passing reason is tried once more; a title call that still fails
leaves the title to the question's first words, so a thread is never nameless.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from dataclasses import dataclass

from django.conf import settings

from agents import catalog
from agents.configuration import group_configuration
from agents.engine.context import estimate_input_tokens
from agents.engine.run import (
    LEDGER_NAMESPACE,
    CallResult,
    ModelChoice,
    backoff_delay,
    measured_usage,
    model_choice,
)
from agents.providers import (
    ChatMessage,
    ChatRequest,
    ProviderError,
    TextDelta,
    UsageReport,
    chat_provider,
)
from billing.models import AICall
from billing.services import (
    LedgerEntry,
    QuotaExceeded,
    Usage,
    ai_calls_record,
    budget_reserve,
    cost_of,
)
from chat.models import AIThread, Message
from ontology.db_async import db_call
from ontology.models import Group, User
from ontology.scoping import group_scope

logger = logging.getLogger(__name__)

TITLE_INSTRUCTIONS = (
    "Write a conversation title of at most six words for the exchange below. "
    "Reply with the title only: no quotes and no final punctuation."
)
TITLE_MAX_TOKENS = 24
TITLE_MAX_CHARS = 80
EXCERPT_CHARS = 1500
TITLE_ATTEMPTS = 2


@dataclass(frozen=True)
class _Prepared:
    choice: ModelChoice
    agent_id: int | None
    question: str
    answer: str


async def generate_title(*, group: Group, thread: AIThread, user: User | None) -> str:
    """A title for the thread's first exchange (the question's first words if the call fails).

    A call that fails before any text, for a reason a retry can fix (rate limited, the
    provider busy or slow), is tried once more after a pause; each attempt is a ledger row.
    """
    prepared = await db_call(_prepare)(group, thread)
    if prepared is None:
        return ""
    if isinstance(prepared, str):
        return prepared
    request = ChatRequest(
        model=prepared.choice.model,
        system=TITLE_INSTRUCTIONS,
        messages=[
            ChatMessage("user", f"Question: {prepared.question}\n\nAnswer: {prepared.answer}")
        ],
        temperature=0.2,
        max_tokens=TITLE_MAX_TOKENS,
        timeout=20.0,
    )
    for attempt in range(TITLE_ATTEMPTS):
        try:
            reservation = await db_call(_reserve)(group, user, prepared.choice, request)
        except QuotaExceeded:
            return fallback_title(prepared.question)  # no budget left: no call, the words will do
        result = await _call(group, thread, user, prepared, request, reservation, attempt)
        error = result.error
        if error is None or result.text or not error.retryable:
            break
        if attempt + 1 < TITLE_ATTEMPTS:
            await asyncio.sleep(backoff_delay(attempt, error))
    return clean_title(result.text) or fallback_title(prepared.question)


async def _call(
    group: Group, thread: AIThread, user: User | None, prepared: _Prepared,
    request: ChatRequest, reservation, attempt: int,
) -> CallResult:  # fmt: skip
    """One title call, streamed and written to the ledger whatever its end."""
    result, reported = CallResult(), UsageReport()
    texts: list[str] = []
    started = time.monotonic()
    first_token_at: float | None = None
    try:
        async for event in chat_provider(prepared.choice.endpoint).stream(request):
            result.streamed = True
            if isinstance(event, TextDelta):
                first_token_at = first_token_at or time.monotonic()
                texts.append(event.text)
            elif isinstance(event, UsageReport):
                reported = UsageReport(
                    input_tokens=event.input_tokens if event.input_tokens is not None
                    else reported.input_tokens,
                    output_tokens=event.output_tokens if event.output_tokens is not None
                    else reported.output_tokens,
                    cached_tokens=event.cached_tokens if event.cached_tokens is not None
                    else reported.cached_tokens,
                )  # fmt: skip
    except ProviderError as error:
        result.error = error
        logger.warning("title for thread %s failed: %s", thread.pk, error.code)
    result.text = "".join(texts)
    info = prepared.choice.info
    call = f"title:{thread.pk}" + (f":{attempt}" if attempt else "")
    entry = LedgerEntry(
        id=uuid.uuid5(LEDGER_NAMESPACE, call),
        group_id=group.pk, user_id=getattr(user, "pk", None), agent_id=prepared.agent_id,
        thread_id=thread.pk, run_id=None, purpose=AICall.Purpose.TITLE,
        provider=info.provider, model=prepared.choice.model, step=0, attempt=attempt,
        usage=measured_usage(request, result, reported),
        prices=await db_call(catalog.prices_for)(info),
        latency_ms=int((time.monotonic() - started) * 1000),
        ttft_ms=int((first_token_at - started) * 1000) if first_token_at else None,
        status=AICall.Status.FAILED if result.error else AICall.Status.OK,
        error_code=result.error.code if result.error else "",
    )  # fmt: skip
    await db_call(ai_calls_record)(entries=[entry], settle=[reservation] if reservation else [])
    return result


def clean_title(text: str) -> str:
    """The model's first line, without quotes, a "Title:" label or final punctuation."""
    line = next((part for part in text.strip().splitlines() if part.strip()), "")
    line = re.sub(r"^\s*(?:title\s*:\s*)", "", line, flags=re.IGNORECASE)
    line = line.strip().strip("\"'`“”*#").strip().rstrip(".!?:;,")
    return _shorten(line)


def fallback_title(question: str) -> str:
    return _shorten(" ".join(question.split()))


def _shorten(text: str) -> str:
    if len(text) <= TITLE_MAX_CHARS:
        return text
    return text[: TITLE_MAX_CHARS - 1].rsplit(" ", 1)[0].rstrip(" ,.;:") + "…"


def _reserve(group: Group, user: User | None, choice: ModelChoice, request: ChatRequest):
    """Hold the title call's worst case against the month's budget, like every call."""
    info = choice.info
    worst = Usage(input_tokens=estimate_input_tokens(request), output_tokens=request.max_tokens)
    prices = catalog.Prices(
        info.input_per_million, info.output_per_million, info.cached_input_per_million
    )
    return budget_reserve(
        group=group, user=user, cost=cost_of(prices=prices, usage=worst),
        tokens=worst.input_tokens + worst.output_tokens, purpose=AICall.Purpose.TITLE,
    )  # fmt: skip


def _prepare(group: Group, thread: AIThread) -> _Prepared | str | None:
    """The model and the first exchange; a str when only the fallback title is possible."""
    with group_scope(group):
        if not AIThread.objects.filter(pk=thread.pk, title="").exists():
            return None
        first = list(
            Message.objects.filter(thread=thread)
            .exclude(status=Message.Status.REPLACED)
            .order_by("created_at", "id")
            .values_list("role", "content")[:2]
        )
    if not first or first[0][0] != Message.Role.USER:
        return None
    question = first[0][1][:EXCERPT_CHARS]
    answer = first[1][1][:EXCERPT_CHARS] if len(first) > 1 else ""
    configuration = group_configuration(group)
    agent = configuration.agents.get(thread.agent_id)
    if settings.PARLEY_TITLE_MODEL:
        provider, _, model = settings.PARLEY_TITLE_MODEL.partition("/")
    elif agent is not None:
        provider, model = agent.properties["provider"], agent.properties["model"]
    else:
        return fallback_title(question)
    try:
        choice = model_choice(provider, model, configuration.credentials)
    except ProviderError:
        return fallback_title(question)
    return _Prepared(choice, getattr(agent, "id", None), question, answer)

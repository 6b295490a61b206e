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
import uuid
from dataclasses import dataclass

from django.conf import settings

from agents import catalog
from agents.configuration import group_configuration
from agents.engine.calls import (
    LEDGER_NAMESPACE,
    CallResult,
    ModelChoice,
    backoff_delay,
    measured_usage,
    merged_report,
    model_choice,
    worst_case,
)
from agents.providers import (
    ChatMessage,
    ChatRequest,
    ProviderError,
    TextDelta,
    UsageReport,
    chat_provider,
)
from billing.metering import MeteredCall, metered
from billing.models import AICall
from billing.services import QuotaExceeded
from ontology.db_async import db_call
from ontology.models import Group, User

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


async def generate_title(
    *,
    group: Group,
    thread_id: int,
    agent_id: int | None,
    question: str,
    answer: str,
    user: User | None,
) -> str:
    """A title for a thread's first exchange (the question's first words if the call fails).

    A call that fails before any text, for a reason a retry can fix (rate limited, the
    provider busy or slow), is tried once more after a pause; each attempt is a ledger row.
    """
    prepared = await db_call(_prepare)(group, agent_id, question, answer)
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
            result = await _call(group, thread_id, user, prepared, request, attempt)
        except QuotaExceeded:
            return fallback_title(prepared.question)  # no budget left: no call, the words will do
        error = result.error
        if error is None or result.text or not error.retryable:
            break
        if attempt + 1 < TITLE_ATTEMPTS:
            await asyncio.sleep(backoff_delay(attempt, error))
    return clean_title(result.text) or fallback_title(prepared.question)


async def _call(
    group: Group,
    thread_id: int,
    user: User | None,
    prepared: _Prepared,
    request: ChatRequest,
    attempt: int,
) -> CallResult:
    """One title call, streamed and metered whatever its end."""
    info = prepared.choice.info
    call = MeteredCall(
        group=group,
        purpose=AICall.Purpose.TITLE,
        provider=info.provider,
        model=prepared.choice.model,
        call_id=uuid.uuid5(
            LEDGER_NAMESPACE, f"title:{thread_id}" + (f":{attempt}" if attempt else "")
        ),
        user=user,
        agent_id=prepared.agent_id,
        thread_id=thread_id,
        attempt=attempt,
    )
    result, reported, texts = CallResult(), UsageReport(), []
    hold = (catalog.list_prices(info), worst_case(request))
    async with metered(call, hold=hold, prices=lambda: catalog.prices_for(info)):
        try:
            async for event in chat_provider(prepared.choice.endpoint).stream(request):
                result.streamed = True
                if isinstance(event, TextDelta):
                    call.first_token()
                    texts.append(event.text)
                elif isinstance(event, UsageReport):
                    reported = merged_report(reported, event)
        except ProviderError as error:
            result.error = error
            call.fail(error.code)
            logger.warning("title for thread %s failed: %s", thread_id, error.code)
        result.text = "".join(texts)
        call.usage = measured_usage(request, result, reported)
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


def _prepare(group: Group, agent_id: int | None, question: str, answer: str) -> _Prepared | str:
    """The model and the exchange's excerpts; a str when only the fallback title is possible."""
    question, answer = question[:EXCERPT_CHARS], answer[:EXCERPT_CHARS]
    configuration = group_configuration(group)
    agent = configuration.agents.get(agent_id)
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

"""The bill for a run whose process died in the middle of a provider call.

The call never wrote its ledger row and its budget hold was never given back. When the
answer is marked interrupted (chat.runs' sweep), this writes the call's row, estimated
(`usage_exact` false, status failed, code `interrupted`), and releases every hold the run
left, in one transaction:

* input: the tokens of what the model was sent, rebuilt from the agent's system prompt and
  the conversation's history (what the run read when it started);
* output: the tokens of the text the run streamed (its durable log), less what the run's
  recorded calls already count;
* provider and model: the agent's own (a fallback in use is not known once the process is
  gone: the estimate says so by being one).

A run with no call in flight writes nothing: with a budget, no hold was left; without
one, the log holds no text beyond what is recorded. Sweeping twice writes one row (its id
is the run's own).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from agents import catalog
from agents.configuration import group_configuration
from agents.engine.calls import LEDGER_NAMESPACE
from agents.tokens import count_message_tokens, count_tokens
from billing.models import AICall, BudgetReservation
from billing.services import LedgerEntry, Usage, ai_calls_record
from ontology.models import Group
from ontology.scoping import group_scope

logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class LostRun:
    group: Group
    run_id: uuid.UUID
    thread_id: int | None
    agent_id: int | None
    user_id: int | None
    history: list[str]  # the texts the model read: the conversation up to the question
    streamed: str  # what the run's log holds of its answer


def meter_interrupted_run(run: LostRun) -> AICall | None:
    """Write the dead call's estimated row and release the run's holds; the row, if any."""
    with group_scope(run.group):
        holds = list(
            BudgetReservation.objects.filter(run_id=run.run_id).values_list("pk", flat=True)
        )
        recorded = AICall.objects.filter(run_id=run.run_id, purpose=AICall.Purpose.CHAT)
        counted_output = sum(recorded.values_list("output_tokens", flat=True))
        steps = recorded.count()
    output = max(0, count_tokens(run.streamed) - counted_output) if run.streamed else 0
    if not holds and not output:
        return None
    entry = _estimate(run, output=output, step=steps)
    if entry is None:
        ai_calls_record(entries=[], settle=holds)
        return None
    ai_calls_record(entries=[entry], settle=holds)
    with group_scope(run.group):
        return AICall.objects.filter(pk=entry.id).first()


def _estimate(run: LostRun, *, output: int, step: int) -> LedgerEntry | None:
    agent = group_configuration(run.group).agents.get(run.agent_id)
    if agent is None:
        logger.warning("run %s: its agent is gone; its lost call is not estimated", run.run_id)
        return None
    properties = agent.properties
    info = catalog.get_model(properties["provider"], properties["model"])
    if info is None:
        logger.warning("run %s: its model is not in the catalog; not estimated", run.run_id)
        return None
    prompt = count_message_tokens([properties.get("systemPrompt", ""), *run.history])
    with group_scope(run.group):
        prices = catalog.prices_for(info)
    return LedgerEntry(
        id=uuid.uuid5(LEDGER_NAMESPACE, f"{run.run_id}:{INTERRUPTED}"),
        group_id=run.group.pk,
        user_id=run.user_id,
        agent_id=run.agent_id,
        thread_id=run.thread_id,
        run_id=run.run_id,
        purpose=AICall.Purpose.CHAT,
        provider=info.provider,
        model=properties["model"],
        step=step,
        attempt=0,
        usage=Usage(input_tokens=prompt, output_tokens=output, exact=False),
        prices=prices,
        latency_ms=0,
        ttft_ms=None,
        status=AICall.Status.FAILED,
        error_code=INTERRUPTED,
    )

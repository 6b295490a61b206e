"""Celery tasks of the agents app. Thin: resolve the group, then call a tool or the ingestion."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from agents.models import KnowledgeSource, ToolCall
from agents.providers import ProviderError
from agents.tools.context import ToolContext
from agents.tools.registry import TOOLS, ToolFailed
from ontology.models import Group
from ontology.scoping import group_scope

logger = logging.getLogger(__name__)


def tool_outcome(record: ToolCall) -> dict[str, Any]:
    return {
        "ok": record.status == ToolCall.Status.OK,
        "result": record.result,
        "error": record.error,
    }


@shared_task(name="agents.run_tool", acks_late=True, reject_on_worker_lost=True)
def run_tool(*, group_id: int, call_id: str) -> dict[str, Any]:
    """Run one tool call once. A redelivered or repeated task returns the stored outcome.

    The executor's writes and the call's result commit together, so a worker
    killed mid-call leaves nothing behind and the redelivery starts clean.
    """
    group = Group.objects.filter(pk=group_id).first()
    if group is None:
        return {"ok": False, "result": None, "error": "The organisation no longer exists."}
    with group_scope(group), transaction.atomic():
        record = (
            ToolCall.objects.select_for_update(of=("self",))
            .select_related("user", "agent", "thread")
            .filter(call_id=call_id)
            .first()
        )
        if record is None:
            return {"ok": False, "result": None, "error": "Unknown tool call."}
        if record.status != ToolCall.Status.PENDING:
            return tool_outcome(record)
        spec = TOOLS.get(record.name)
        context = ToolContext(
            group=group, user=record.user, agent=record.agent, thread=record.thread,
            call_id=call_id,
        )  # fmt: skip
        try:
            with transaction.atomic():
                if spec is None or spec.execute is None:
                    raise ToolFailed(f"The tool {record.name} is not available.")
                record.result = spec.execute(context, record.arguments)
            record.status = ToolCall.Status.OK
        except ToolFailed as failure:
            record.status, record.error = ToolCall.Status.FAILED, str(failure)
        except Exception as error:
            logger.exception("tool %s failed (call %s)", record.name, call_id)
            record.status = ToolCall.Status.FAILED
            record.error = f"The tool failed unexpectedly ({type(error).__name__})."
        record.finished_at = timezone.now()
        record.save(update_fields=["status", "result", "error", "finished_at"])
        return tool_outcome(record)


def _backoff(retries: int) -> int:
    return min(300, 5 * 2**retries)


@shared_task(name="agents.ingest_source", bind=True, acks_late=True, reject_on_worker_lost=True,
             max_retries=6)  # fmt: skip
def ingest_source(self, *, group_id: int, source_id: int) -> str | None:
    """Chunk and embed one knowledge source; a redelivery resumes without duplicating."""
    from agents import ingestion

    group = Group.objects.filter(pk=group_id).first()
    if group is None:
        return None
    try:
        source = ingestion.source_process(group=group, source_id=source_id)
    except ProviderError as error:
        if self.request.retries >= self.max_retries:
            with group_scope(group):
                source = KnowledgeSource.objects.filter(pk=source_id).first()
            if source is not None:
                ingestion.source_fail(
                    source=source, reason=f"The embedding provider kept failing: {error.message}"
                )
            return KnowledgeSource.Status.FAILED
        raise self.retry(
            exc=error, countdown=error.retry_after or _backoff(self.request.retries)
        ) from error
    return source.status if source is not None else None


@shared_task(name="agents.build_embedding_index", bind=True, acks_late=True,
             reject_on_worker_lost=True, max_retries=6)  # fmt: skip
def build_embedding_index(self, *, group_id: int, model: str) -> str | None:
    """Embed a group's chunks with a model it now needs; the old model serves meanwhile."""
    from agents import ingestion

    group = Group.objects.filter(pk=group_id).first()
    if group is None:
        return None
    try:
        return ingestion.index_build(group=group, model=model)
    except ProviderError as error:
        if self.request.retries >= self.max_retries:
            with group_scope(group):
                ingestion.index_fail(group=group, model=model, reason=error.message)
            return "failed"
        raise self.retry(
            exc=error, countdown=error.retry_after or _backoff(self.request.retries)
        ) from error

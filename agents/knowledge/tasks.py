"""Celery tasks for knowledge (the `embeddings` queue). Thin: resolve the group, call the
pipeline; a redelivery resumes without duplicating anything."""

from __future__ import annotations

from celery import shared_task

from agents.knowledge.ingestion.pipeline import index_build, source_process
from agents.knowledge.retrieval.indexes import index_fail
from agents.knowledge.services import source_fail
from agents.models import KnowledgeSource
from agents.providers import ProviderError
from ontology.models import Group
from ontology.scoping import group_scope


def _backoff(retries: int) -> int:
    return min(300, 5 * 2**retries)


@shared_task(
    name="agents.ingest_source",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=6,
)
def ingest_source(self, *, group_id: int, source_id: int) -> str | None:
    """Chunk and embed one knowledge source; a redelivery resumes without duplicating."""
    group = Group.objects.filter(pk=group_id).first()
    if group is None:
        return None
    try:
        source = source_process(group=group, source_id=source_id)
    except ProviderError as error:
        if self.request.retries >= self.max_retries:
            with group_scope(group):
                source = KnowledgeSource.objects.filter(pk=source_id).first()
            if source is not None:
                source_fail(
                    source=source, reason=f"The embedding provider kept failing: {error.message}"
                )
            return KnowledgeSource.Status.FAILED
        raise self.retry(
            exc=error, countdown=error.retry_after or _backoff(self.request.retries)
        ) from error
    return source.status if source is not None else None


@shared_task(
    name="agents.build_embedding_index",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=6,
)
def build_embedding_index(self, *, group_id: int, model: str) -> str | None:
    """Embed a group's chunks with a model it now needs; the old model serves meanwhile."""
    group = Group.objects.filter(pk=group_id).first()
    if group is None:
        return None
    try:
        return index_build(group=group, model=model)
    except ProviderError as error:
        if self.request.retries >= self.max_retries:
            with group_scope(group):
                index_fail(group=group, model=model, reason=error.message)
            return "failed"
        raise self.retry(
            exc=error, countdown=error.retry_after or _backoff(self.request.retries)
        ) from error

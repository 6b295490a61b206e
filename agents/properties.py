"""An agent's properties: defaults and validation with field-named, plain-sentence errors.

Used by the services (every write path) and by the admin form, so bad values
are refused the same way wherever they come from.
"""

from __future__ import annotations

from decimal import Decimal
from numbers import Real
from typing import Any

from django.core.exceptions import ValidationError

from agents import catalog
from agents.tools.registry import TOOLS
from ontology.properties import reject_unknown_keys

AGENT_DEFAULTS: dict[str, Any] = {
    "provider": "openai",
    "model": "gpt-4o-mini",
    "systemPrompt": "You are a helpful assistant.",
    "temperature": 0.7,
    "maxTokens": 1024,
    "tools": [],
    "ragEnabled": False,
    "ragTopK": 5,
    "embeddingModel": "",  # empty: the organisation's embedding model
    "knowledgeSources": [],  # empty: all of the organisation's knowledge
    "toolCallTimeout": 30,
    "requestTimeout": 60,
    "maxConsecutiveToolCalls": 5,
    "fallbackProvider": "",
    "fallbackModel": "",
}

MAX_SYSTEM_PROMPT = 20_000
MAX_TIMEOUT_SECONDS = 600
MAX_CONSECUTIVE_TOOL_CALLS = 50
MAX_KNOWLEDGE_SOURCES = 500


def _is_number(value: Any) -> bool:
    return isinstance(value, Real | Decimal) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_model(provider: Any, model: Any, *, provider_key: str, model_key: str, errors: dict):
    """Return the catalog entry for provider/model, recording a field-named error if unknown."""
    if provider not in catalog.PROVIDERS:
        known = ", ".join(catalog.PROVIDERS)
        errors[provider_key] = f"Unknown provider {provider!r}. Known providers: {known}."
        return None
    if isinstance(model, str) and len(model) > catalog.MAX_MODEL_CHARS:
        errors[model_key] = f"Model names can be at most {catalog.MAX_MODEL_CHARS} characters."
        return None
    info = catalog.get_model(provider, model) if isinstance(model, str) else None
    if info is None or info.is_embedding:
        label = catalog.PROVIDERS[provider].label
        errors[model_key] = f"Model {model!r} is not in the catalog for {label}."
        return None
    return info


def validate_agent_properties(properties: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    reject_unknown_keys(properties, set(AGENT_DEFAULTS), errors)
    p = {**AGENT_DEFAULTS, **{k: v for k, v in properties.items() if k in AGENT_DEFAULTS}}

    info = _check_model(
        p["provider"], p["model"], provider_key="provider", model_key="model", errors=errors
    )

    if not isinstance(p["systemPrompt"], str):
        errors["systemPrompt"] = "System prompt must be text."
    elif len(p["systemPrompt"]) > MAX_SYSTEM_PROMPT:
        errors["systemPrompt"] = f"System prompt must be at most {MAX_SYSTEM_PROMPT} characters."

    if not _is_number(p["temperature"]) or not 0 <= p["temperature"] <= 2:
        errors["temperature"] = "Temperature must be a number between 0 and 2."
    else:
        p["temperature"] = float(p["temperature"])

    if not _is_int(p["maxTokens"]) or p["maxTokens"] < 1:
        errors["maxTokens"] = "Max tokens must be a positive whole number."
    elif info is not None and p["maxTokens"] > info.max_output:
        errors["maxTokens"] = (
            f"Max tokens must be at most {info.max_output} for {info.model} "
            "(the model's output limit)."
        )

    tools = p["tools"]
    if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
        errors["tools"] = "Tools must be a list of tool names."
    else:
        unknown = [t for t in tools if t not in TOOLS]
        if unknown:
            errors["tools"] = (
                f"Unknown tool(s): {', '.join(unknown)}. Available tools: {', '.join(TOOLS)}."
            )
        elif tools and info is not None and not info.tools:
            errors["tools"] = (
                f"{info.model} cannot call tools; remove the tools or pick another model."
            )
        p["tools"] = list(dict.fromkeys(tools))

    if not isinstance(p["ragEnabled"], bool):
        errors["ragEnabled"] = "RAG enabled must be true or false."

    if not _is_int(p["ragTopK"]) or not 1 <= p["ragTopK"] <= 50:
        errors["ragTopK"] = "Top-k must be a whole number between 1 and 50."

    if p["embeddingModel"] != "" and catalog.get_embedding_model(p["embeddingModel"]) is None:
        known = ", ".join(m.model for m in catalog.embedding_models())
        errors["embeddingModel"] = (
            f"Unknown embedding model {p['embeddingModel']!r}. Known embedding models: {known}."
        )

    sources = p["knowledgeSources"]
    if (
        not isinstance(sources, list)
        or not all(_is_int(s) and s > 0 for s in sources)
        or len(sources) > MAX_KNOWLEDGE_SOURCES
    ):
        errors["knowledgeSources"] = (
            f"Knowledge sources must be a list of at most {MAX_KNOWLEDGE_SOURCES} source ids."
        )
    else:
        p["knowledgeSources"] = sorted(set(sources))

    for key, label in (
        ("toolCallTimeout", "Tool call timeout"),
        ("requestTimeout", "Request timeout"),
    ):
        value = p[key]
        if not _is_number(value) or not 0 < value <= MAX_TIMEOUT_SECONDS:
            errors[key] = (
                f"{label} must be a positive number of seconds, at most {MAX_TIMEOUT_SECONDS}."
            )

    value = p["maxConsecutiveToolCalls"]
    if not _is_int(value) or not 1 <= value <= MAX_CONSECUTIVE_TOOL_CALLS:
        errors["maxConsecutiveToolCalls"] = (
            f"Max consecutive tool calls must be a whole number between 1 and "
            f"{MAX_CONSECUTIVE_TOOL_CALLS}."
        )

    if p["fallbackProvider"] or p["fallbackModel"]:
        fallback = _check_model(
            p["fallbackProvider"],
            p["fallbackModel"],
            provider_key="fallbackProvider",
            model_key="fallbackModel",
            errors=errors,
        )
        same = (p["fallbackProvider"], p["fallbackModel"]) == (p["provider"], p["model"])
        if fallback is not None and same:
            errors["fallbackModel"] = "The fallback model must differ from the agent's model."

    if errors:
        raise ValidationError(errors)
    return p

"""An agent's properties: defaults and validation with field-named, plain-sentence errors.

AGENT_SCHEMA (JSON Schema) holds each property's type and bounds; the checks
that need the catalog or the tool registry follow it. Used by the services
(every write path) and by the admin form, so bad values are refused the same
way wherever they come from.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from agents import catalog
from agents.simulator.scenario import parse_scenario, split_model
from agents.tools.registry import TOOLS
from ontology.properties import schema_errors

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
# The simulator's behaviour parameters that must be numbers (agents.simulator.behaviours).
NUMERIC_PARAMETERS = frozenset({"ttft_ms", "tps", "words", "cached", "retry_after"})

_UNKNOWN_PROVIDER = (
    f"Unknown provider {{value!r}}. Known providers: {', '.join(catalog.PROVIDERS)}."
)
_KNOWN_EMBEDDING_MODELS = [m.model for m in catalog.embedding_models()]
# Only a string has a length: any other model falls through to the catalog check.
_MODEL_NAME = {
    "maxLength": catalog.MAX_MODEL_CHARS,
    "errorMessage": f"Model names can be at most {catalog.MAX_MODEL_CHARS} characters.",
}
_TIMEOUT = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_SECONDS}
_TIMEOUT_MESSAGE = f"{{label}} must be a positive number of seconds, at most {MAX_TIMEOUT_SECONDS}."

AGENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "provider": {"enum": list(catalog.PROVIDERS), "errorMessage": _UNKNOWN_PROVIDER},
        "model": _MODEL_NAME,
        "systemPrompt": {
            "type": "string",
            "maxLength": MAX_SYSTEM_PROMPT,
            "errorMessage": {
                "type": "System prompt must be text.",
                "maxLength": f"System prompt must be at most {MAX_SYSTEM_PROMPT} characters.",
            },
        },
        "temperature": {
            "type": "number",
            "minimum": 0,
            "maximum": 2,
            "errorMessage": "Temperature must be a number between 0 and 2.",
        },
        "maxTokens": {
            "type": "integer",
            "minimum": 1,
            "errorMessage": "Max tokens must be a positive whole number.",
        },
        "tools": {
            "type": "array",
            "items": {"type": "string"},
            "errorMessage": "Tools must be a list of tool names.",
        },
        "ragEnabled": {"type": "boolean", "errorMessage": "RAG enabled must be true or false."},
        "ragTopK": {
            "type": "integer",
            "minimum": 1,
            "maximum": 50,
            "errorMessage": "Top-k must be a whole number between 1 and 50.",
        },
        "embeddingModel": {
            "enum": ["", *_KNOWN_EMBEDDING_MODELS],
            "errorMessage": f"Unknown embedding model {{value!r}}. "
            f"Known embedding models: {', '.join(_KNOWN_EMBEDDING_MODELS)}.",
        },
        "knowledgeSources": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1},
            "maxItems": MAX_KNOWLEDGE_SOURCES,
            "errorMessage": f"Knowledge sources must be a list of at most "
            f"{MAX_KNOWLEDGE_SOURCES} source ids.",
        },
        "toolCallTimeout": {
            **_TIMEOUT,
            "errorMessage": _TIMEOUT_MESSAGE.format(label="Tool call timeout"),
        },
        "requestTimeout": {
            **_TIMEOUT,
            "errorMessage": _TIMEOUT_MESSAGE.format(label="Request timeout"),
        },
        "maxConsecutiveToolCalls": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_CONSECUTIVE_TOOL_CALLS,
            "errorMessage": f"Max consecutive tool calls must be a whole number between 1 and "
            f"{MAX_CONSECUTIVE_TOOL_CALLS}.",
        },
        "fallbackProvider": {"enum": ["", *catalog.PROVIDERS], "errorMessage": _UNKNOWN_PROVIDER},
        "fallbackModel": _MODEL_NAME,
    },
}


def _catalog_model(
    provider: str, model: Any, *, model_key: str, errors: dict[str, str]
) -> catalog.ModelInfo | None:
    """The catalog's chat model `model` of `provider`, or None with an error under model_key."""
    info = catalog.get_model(provider, model) if isinstance(model, str) else None
    if info is None or info.is_embedding:
        label = catalog.PROVIDERS[provider].label
        errors[model_key] = f"Model {model!r} is not in the catalog for {label}."
        return None
    problem = _behaviour_problem(model) if catalog.PROVIDERS[provider].scenarios else None
    if problem:
        errors[model_key] = f"Model {model!r}: {problem}."
        return None
    return info


def _behaviour_problem(model: str) -> str | None:
    """Why a simulator model's behaviour suffix (`@text;tps=40`) would fail its calls, if so."""
    _, spec = split_model(model)
    if spec is None:
        return None
    try:
        scenario = parse_scenario(spec)
        for key in NUMERIC_PARAMETERS & scenario.params.keys():
            scenario.number(key, 0)
    except ValueError as error:
        return str(error)
    return None


def _check_fallback(p: dict[str, Any], errors: dict[str, str]) -> None:
    if not (p["fallbackProvider"] or p["fallbackModel"]):
        return
    if not p["fallbackProvider"]:
        errors["fallbackProvider"] = _UNKNOWN_PROVIDER.format(value="")
        return
    fallback = _catalog_model(
        p["fallbackProvider"], p["fallbackModel"], model_key="fallbackModel", errors=errors
    )
    same = (p["fallbackProvider"], p["fallbackModel"]) == (p["provider"], p["model"])
    if fallback is not None and same:
        errors["fallbackModel"] = "The fallback model must differ from the agent's model."


def _check_tools(tools: list[str], info: catalog.ModelInfo | None, errors: dict[str, str]) -> None:
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        errors["tools"] = (
            f"Unknown tool(s): {', '.join(unknown)}. Available tools: {', '.join(TOOLS)}."
        )
    elif tools and info is not None and not info.tools:
        errors["tools"] = f"{info.model} cannot call tools; remove the tools or pick another model."


def _cross_field_errors(p: dict[str, Any], errors: dict[str, str]) -> None:
    """What the schema cannot say: the catalog and the tool registry, for fields it let through."""
    info = None
    if "provider" not in errors and "model" not in errors:
        info = _catalog_model(p["provider"], p["model"], model_key="model", errors=errors)
    if "maxTokens" not in errors and info is not None and p["maxTokens"] > info.max_output:
        errors["maxTokens"] = (
            f"Max tokens must be at most {info.max_output} for {info.model} "
            "(the model's output limit)."
        )
    if "tools" not in errors:
        _check_tools(p["tools"], info, errors)
    if "fallbackProvider" not in errors and "fallbackModel" not in errors:
        _check_fallback(p, errors)


def validate_agent_properties(properties: dict[str, Any]) -> dict[str, Any]:
    p = {**AGENT_DEFAULTS, **properties}
    errors = schema_errors(AGENT_SCHEMA, p)
    _cross_field_errors(p, errors)
    if errors:
        raise ValidationError(errors)
    p["temperature"] = float(p["temperature"])
    p["tools"] = list(dict.fromkeys(p["tools"]))
    p["knowledgeSources"] = sorted(set(p["knowledgeSources"]))
    return p

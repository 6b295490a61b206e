"""Providers behind one interface: stream a chat turn, embed texts, fail with a stable code."""

from agents.providers.base import (
    RETRYABLE_CODES,
    ChatMessage,
    ChatProvider,
    ChatRequest,
    Embeddings,
    Finished,
    ProviderError,
    StreamEvent,
    TextDelta,
    ToolCallReady,
    ToolCallRequest,
    ToolDefinition,
    UsageReport,
)
from agents.providers.errors import provider_error_from
from agents.providers.registry import Endpoint, chat_provider, resolve_endpoint

__all__ = [
    "RETRYABLE_CODES",
    "ChatMessage",
    "ChatProvider",
    "ChatRequest",
    "Embeddings",
    "Endpoint",
    "Finished",
    "ProviderError",
    "StreamEvent",
    "TextDelta",
    "ToolCallReady",
    "ToolCallRequest",
    "ToolDefinition",
    "UsageReport",
    "chat_provider",
    "provider_error_from",
    "resolve_endpoint",
]

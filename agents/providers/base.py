"""What every provider speaks: a chat request in, a stream of typed events out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ontology.errors import ErrorCode


@dataclass(frozen=True)
class ToolDefinition:
    name: str
    description: str
    parameters: dict


@dataclass(frozen=True)
class ToolCallRequest:
    id: str
    name: str
    arguments: str  # raw JSON text, as the model wrote it


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["user", "assistant", "tool"]
    content: str = ""
    tool_calls: tuple[ToolCallRequest, ...] = ()
    tool_call_id: str = ""


@dataclass
class ChatRequest:
    model: str
    system: str
    messages: list[ChatMessage]
    tools: list[ToolDefinition] = field(default_factory=list)
    temperature: float = 0.7
    max_tokens: int = 1024
    timeout: float = 60.0


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallReady:
    call: ToolCallRequest


@dataclass(frozen=True)
class Finished:
    reason: str  # "stop", "tool_calls", "length" or the provider's own word


@dataclass(frozen=True)
class UsageReport:
    """Token counts as the provider reported them; None where it has not said yet."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None


StreamEvent = TextDelta | ToolCallReady | Finished | UsageReport


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    input_tokens: int


class ChatProvider(Protocol):
    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]: ...

    async def embed(
        self, *, model: str, texts: list[str], dimensions: int | None = None
    ) -> Embeddings: ...


ERROR_CODES = frozenset(
    {
        ErrorCode.PROVIDER_RATE_LIMITED,
        ErrorCode.CONTEXT_LENGTH,
        ErrorCode.PROVIDER_UNAVAILABLE,
        ErrorCode.AUTH,
        ErrorCode.INVALID_REQUEST,
        ErrorCode.TIMEOUT,
        ErrorCode.ENDPOINT_REFUSED,
    }
)
RETRYABLE_CODES = frozenset(
    {ErrorCode.PROVIDER_RATE_LIMITED, ErrorCode.PROVIDER_UNAVAILABLE, ErrorCode.TIMEOUT}
)


class ProviderError(Exception):
    """A provider failure with a stable code the UI maps to a plain sentence."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"{code!r} is not a provider error code.")
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.retry_after = retry_after
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES

    def __repr__(self) -> str:
        return f"ProviderError({self.code!r}, {self.message!r})"

"""Turn the SDKs' exceptions into ProviderError with a stable code."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import aiohttp
import anthropic
import httpx2
import openai

from agents.addresses import AddressRefused
from agents.providers.base import ProviderError
from ontology.errors import ErrorCode

_CONTEXT_MARKERS = ("context_length_exceeded", "maximum context length", "prompt is too long")


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it was raised from or during, innermost last."""
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _broken_connection(exc: BaseException) -> bool:
    """A refused or dropped connection the SDKs' aiohttp transport reports as a timeout.

    Its exception map sends every aiohttp.ClientConnectionError that is not a timeout
    (connection refused, server disconnected) to httpx's ConnectTimeout first.
    """
    for seen in _chain(exc):
        if isinstance(seen, aiohttp.ServerTimeoutError | aiohttp.SocketTimeoutError):
            return False
        if isinstance(seen, aiohttp.ClientConnectionError):
            return True
    return False


def _refused_address(exc: BaseException) -> AddressRefused | None:
    """The check of a tenant endpoint's addresses, wherever the SDK's exception chain hid it."""
    return next((seen for seen in _chain(exc) if isinstance(seen, AddressRefused)), None)


def provider_error_from(exc: Exception) -> ProviderError:
    """Classify any exception raised while talking to a provider."""
    if isinstance(exc, ProviderError):
        return exc
    refused = _refused_address(exc)
    if refused is not None:
        return ProviderError("endpoint_refused", str(refused))
    timeouts = openai.APITimeoutError | anthropic.APITimeoutError | httpx2.TimeoutException
    if isinstance(exc, timeouts | TimeoutError):  # httpx's own: a read timing out mid-stream
        if not _broken_connection(exc):
            return ProviderError("timeout", "The provider took too long to answer.")
        return ProviderError("provider_unavailable", "Could not reach the provider.")
    if isinstance(exc, openai.APIConnectionError | anthropic.APIConnectionError):
        return ProviderError("provider_unavailable", "Could not reach the provider.")
    status = getattr(exc, "status_code", None)
    if status is None:
        # An error while reading a stream: the connection broke part-way.
        return ProviderError(
            "provider_unavailable", f"The provider connection was lost ({type(exc).__name__})."
        )
    text = str(exc)
    if status < 400:
        return _from_stream_error(exc, text)
    if status == 429:
        return ProviderError(
            ErrorCode.PROVIDER_RATE_LIMITED,
            "The provider is rate limiting requests.",
            retry_after=_retry_after(exc),
            status=status,
        )
    if status in (401, 403):
        return ProviderError("auth", "The provider refused the API key.", status=status)
    if any(marker in text for marker in _CONTEXT_MARKERS):
        return ProviderError(
            "context_length", "The conversation is too long for this model.", status=status
        )
    if status >= 500 or status == 408:
        return ProviderError(
            "provider_unavailable",
            f"The provider failed (HTTP {status}).",
            retry_after=_retry_after(exc),
            status=status,
        )
    return ProviderError(
        "invalid_request", f"The provider refused the request: {text}", status=status
    )


_STREAM_ERROR_CODES = {
    "overloaded_error": "provider_unavailable",
    "api_error": "provider_unavailable",
    "rate_limit_error": ErrorCode.PROVIDER_RATE_LIMITED,
    "authentication_error": "auth",
    "permission_error": "auth",
    "invalid_request_error": "invalid_request",
}


def _from_stream_error(exc: Exception, text: str) -> ProviderError:
    """An error event inside a 200 stream (Anthropic sends `event: error` mid-stream)."""
    body = getattr(exc, "body", None)
    error = body.get("error", body) if isinstance(body, dict) else {}
    kind = error.get("type", "") if isinstance(error, dict) else ""
    if any(marker in text for marker in _CONTEXT_MARKERS):
        return ProviderError("context_length", "The conversation is too long for this model.")
    code = _STREAM_ERROR_CODES.get(kind, "provider_unavailable")
    return ProviderError(code, f"The provider reported an error mid-stream ({kind or 'unknown'}).")


async def classified(chunks: AsyncGenerator[Any, None]) -> AsyncIterator[Any]:
    """Iterate a stream that opens on its first step: any failure becomes a ProviderError."""
    try:
        async for item in chunks:
            yield item
    except Exception as exc:
        raise provider_error_from(exc) from exc
    finally:
        await chunks.aclose()

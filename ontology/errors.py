"""Every error code a person can meet, and the plain sentence each is shown as, in one place.

The socket, the pages, the API and the agent loop all answer with these codes; the UI
maps a code to its sentence here. Frame errors carry a more specific message of their
own (which field, which limit), with the sentence below as their general meaning.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # The AI provider (agents.providers.ProviderError)
    PROVIDER_RATE_LIMITED = "provider_rate_limited"
    CONTEXT_LENGTH = "context_length"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    AUTH = "auth"
    INVALID_REQUEST = "invalid_request"
    TIMEOUT = "timeout"
    ENDPOINT_REFUSED = "endpoint_refused"
    # The platform
    AGENT_UNAVAILABLE = "agent_unavailable"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"
    INTERRUPTED = "interrupted"
    QUOTA_EXCEEDED = "quota_exceeded"
    # What the person asked for
    RATE_LIMITED = "rate_limited"
    BUSY = "busy"
    READ_ONLY = "read_only"
    NOT_FOUND = "not_found"
    INVALID = "invalid"
    NOT_RUNNING = "not_running"
    MANAGERS_ONLY = "managers_only"
    # A program's API token (ontology.tokens)
    UNAUTHENTICATED = "unauthenticated"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    # A socket frame the server refuses (chat.frames)
    BAD_FRAME = "bad_frame"
    BAD_JSON = "bad_json"
    BAD_TEXT = "bad_text"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_FIELD = "missing_field"
    EMPTY = "empty"
    TOO_LONG = "too_long"


SENTENCES: dict[ErrorCode, str] = {
    ErrorCode.PROVIDER_RATE_LIMITED: (
        "The AI provider is busy right now. Please try again in a moment."
    ),
    ErrorCode.CONTEXT_LENGTH: "This conversation is too long for the model. Start a new thread.",
    ErrorCode.PROVIDER_UNAVAILABLE: "The AI provider is not answering right now. Please try again.",
    ErrorCode.AUTH: (
        "The AI provider refused our credentials. An administrator needs to check the API key."
    ),
    ErrorCode.INVALID_REQUEST: "The AI provider could not handle this request.",
    ErrorCode.TIMEOUT: "The AI provider took too long to answer. Please try again.",
    ErrorCode.ENDPOINT_REFUSED: (
        "This organisation's AI endpoint is on a private or local network address, which "
        "the platform does not call. An administrator needs to change its URL."
    ),
    ErrorCode.AGENT_UNAVAILABLE: "This agent is not available right now.",
    ErrorCode.INTERNAL: "Something went wrong on our side. The answer so far has been kept.",
    ErrorCode.INTERRUPTED: (
        "The answer was cut off: the server writing it stopped. What it wrote is kept; "
        "regenerate it to get a whole answer."
    ),
    ErrorCode.UNAVAILABLE: (
        "The chat service is briefly unavailable. Nothing was saved; please try again."
    ),
    ErrorCode.QUOTA_EXCEEDED: (
        "Your organisation has used its AI budget for this month. "
        "An owner can raise the budget; until then no new answers can be written."
    ),
    ErrorCode.RATE_LIMITED: "You are sending too fast. Wait a moment and try again.",
    ErrorCode.BUSY: "An answer is still being written. Wait or stop it first.",
    ErrorCode.READ_ONLY: (
        "This is a colleague's conversation: you can read it, but only they can write in it."
    ),
    ErrorCode.NOT_FOUND: "That is not in this conversation.",
    ErrorCode.INVALID: "That request is not valid.",
    ErrorCode.MANAGERS_ONLY: "Only the organisation's owners and admins can do this.",
    ErrorCode.NOT_RUNNING: "Nothing is being written right now, so there is nothing to stop.",
    ErrorCode.UNAUTHENTICATED: (
        "Send a valid API token as 'Authorization: Bearer prl_…'. It may have been revoked, "
        "have expired, or belong to someone no longer in the organisation."
    ),
    ErrorCode.INSUFFICIENT_SCOPE: "This API token's scopes do not allow that.",
    ErrorCode.BAD_FRAME: "That frame is not one the server understands.",
    ErrorCode.BAD_JSON: "That frame is not valid JSON.",
    ErrorCode.BAD_TEXT: (
        "Messages can't contain NUL characters or broken Unicode (lone surrogates)."
    ),
    ErrorCode.UNKNOWN_TYPE: "Unknown frame type.",
    ErrorCode.MISSING_FIELD: "The frame is missing a field.",
    ErrorCode.EMPTY: "Write a message first.",
    ErrorCode.TOO_LONG: "That message is too long.",
}


def sentence_for(code: str) -> str:
    """The plain sentence for a code; an unknown one reads as our own failure."""
    try:
        return SENTENCES[ErrorCode(code)]
    except ValueError:
        return SENTENCES[ErrorCode.INTERNAL]

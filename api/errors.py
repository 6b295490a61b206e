"""The API's two error shapes, one per family of routes, built from ontology.errors' codes.

* `/api/v1/`: `{"error": {"code": "...", "message": "..."}}`, the socket's codes;
* `/v1/` (OpenAI-compatible): OpenAI's `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

from django.http import JsonResponse

from ontology.errors import ErrorCode, sentence_for

# The HTTP status each code answers with (the socket's codes, and the token's own).
STATUS: dict[str, int] = {
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.INSUFFICIENT_SCOPE: 403,
    ErrorCode.READ_ONLY: 403,
    ErrorCode.MANAGERS_ONLY: 403,
    ErrorCode.NOT_RUNNING: 409,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.BUSY: 409,
    ErrorCode.QUOTA_EXCEEDED: 402,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.PROVIDER_RATE_LIMITED: 429,
    ErrorCode.AGENT_UNAVAILABLE: 404,
    ErrorCode.CONTEXT_LENGTH: 400,
    ErrorCode.INVALID: 400,
    ErrorCode.BAD_JSON: 400,
    ErrorCode.BAD_TEXT: 400,
    ErrorCode.MISSING_FIELD: 400,
    ErrorCode.EMPTY: 400,
    ErrorCode.TOO_LONG: 400,
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.PROVIDER_UNAVAILABLE: 502,
    ErrorCode.AUTH: 502,
    ErrorCode.ENDPOINT_REFUSED: 502,
    ErrorCode.TIMEOUT: 504,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNAVAILABLE: 503,
}

# OpenAI's `type` for each status (what its SDK maps to its exception classes).
OPENAI_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    429: "rate_limit_error",
}


def status_for(code: str) -> int:
    return STATUS.get(code, 500)


def api_error(
    code: str,
    message: str | None = None,
    *,
    status: int | None = None,
    retry_after: int | None = None,
) -> JsonResponse:
    """`{"error": {"code", "message"}}` with the code's status (and Retry-After when given)."""
    response = JsonResponse(
        {"error": {"code": str(code), "message": message or sentence_for(code)}},
        status=status or status_for(code),
    )
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def openai_error_body(code: str, message: str | None = None, *, param: str | None = None) -> dict:
    status = status_for(code)
    return {
        "error": {
            "message": message or sentence_for(code),
            "type": OPENAI_TYPES.get(status, "server_error" if status >= 500 else "api_error"),
            "param": param,
            "code": str(code),
        }
    }


def openai_error(
    code: str,
    message: str | None = None,
    *,
    status: int | None = None,
    param: str | None = None,
    retry_after: int | None = None,
) -> JsonResponse:
    """OpenAI's error shape and status: what its SDKs turn into AuthenticationError,
    NotFoundError, RateLimitError..."""
    response = JsonResponse(
        openai_error_body(code, message, param=param), status=status or status_for(code)
    )
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response

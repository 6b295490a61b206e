"""Error responses, in each wire's own body format, as the SDKs expect to parse them."""

from __future__ import annotations

from aiohttp import web

from agents.simulator.replies import Failure

OPENAI_CONTEXT_LIMIT = 128_000
ANTHROPIC_CONTEXT_LIMIT = 200_000


class Rejected(Exception):
    """A request answered with an error body instead of a completion."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        openai_type: str = "invalid_request_error",
        anthropic_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.openai_type = openai_type
        self.anthropic_type = anthropic_type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def openai_response(self) -> web.Response:
        error = {
            "message": self.message,
            "type": self.openai_type,
            "param": self.param,
            "code": self.code,
        }
        return web.json_response({"error": error}, status=self.status, headers=self.headers)

    def anthropic_response(self) -> web.Response:
        body = {"type": "error", "error": {"type": self.anthropic_type, "message": self.message}}
        return web.json_response(body, status=self.status, headers=self.headers)


def rejection_for(failure: Failure, *, wire: str, prompt_tokens: int) -> Rejected:
    """The error a planned `Failure` becomes on this wire, with the real API's status and text."""
    if failure.kind == "rate_limited":
        retry_after = f"{failure.retry_after:g}"
        return Rejected(
            429,
            "Rate limit reached for requests (simulated).",
            openai_type="requests",
            anthropic_type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"retry-after": retry_after},
        )
    if failure.kind == "server_error":
        if wire == "anthropic":
            return Rejected(529, "Overloaded", anthropic_type="overloaded_error")
        return Rejected(
            500,
            "The server had an error while processing your request.",
            openai_type="server_error",
        )
    if wire == "anthropic":
        message = f"prompt is too long: {prompt_tokens} tokens > {ANTHROPIC_CONTEXT_LIMIT} maximum"
        return Rejected(400, message)
    message = (
        f"This model's maximum context length is {OPENAI_CONTEXT_LIMIT} tokens. "
        f"However, your messages resulted in {prompt_tokens} tokens."
    )
    return Rejected(400, message, code="context_length_exceeded", param="messages")

"""The JSON API's request edge: one view per route that dispatches on the method, answers
an unknown method with 405 and a refused request with the API's error shape.

Views raise `Problem` for anything they refuse; the dispatcher words it with `api_error`,
so every refusal of /api/v1/ has the same `{"error": {"code", "message"}}` body.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from api.errors import api_error
from ontology.errors import ErrorCode

View = Callable[..., Any]


class Problem(Exception):
    """A request the API refuses: its code, a specific message and (optionally) its status."""

    def __init__(self, code: str, message: str | None = None, status: int | None = None) -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message
        self.status = status

    def response(self) -> HttpResponse:
        return api_error(self.code, self.message, status=self.status)


def endpoint(**views: View) -> View:
    """One URL's view: `endpoint(GET=list_things, POST=create_thing)`, each an async view."""
    allowed = ", ".join(sorted(views))

    async def dispatch(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        view = views.get(request.method or "")
        if view is None:
            response = api_error(ErrorCode.INVALID, f"Use {allowed} on this route.", status=405)
            response["Allow"] = allowed
            return response
        try:
            return await view(request, *args, **kwargs)
        except Problem as problem:
            return problem.response()

    dispatch.methods = frozenset(views)  # what the OpenAPI document must describe
    return csrf_exempt(dispatch)


def json_object(request: HttpRequest) -> dict[str, Any]:
    """The request body as a JSON object (an empty body counts as `{}`)."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise Problem(ErrorCode.TOO_LONG, "The request body is too large.") from None
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # invalid JSON or UTF-8, or nested too deep
        raise Problem(ErrorCode.BAD_JSON, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise Problem(ErrorCode.INVALID, "The request body must be a JSON object.")
    return data


def int_param(request: HttpRequest, name: str, *, default: int, low: int, high: int) -> int:
    value = request.GET.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise Problem(ErrorCode.INVALID, f"`{name}` must be a whole number.") from None
    if not low <= number <= high:
        raise Problem(ErrorCode.INVALID, f"`{name}` must be from {low} to {high}.")
    return number

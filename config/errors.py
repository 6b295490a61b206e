"""The site's error views. A program under /api/ or /v1/ gets the JSON error of its API (a path
no route matches, such as a thread id that is not a number; a view that fails); people get a
page in the site's layout with a way back."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.shortcuts import render
from django.template import loader

from api.errors import api_error, openai_error
from ontology.errors import ErrorCode

logger = logging.getLogger(__name__)


def _api_error(
    request: HttpRequest, code: str, message: str | None = None, *, openai_message: str = ""
) -> HttpResponse | None:
    """The API's own error for a path under /api/ or /v1/; None for a person's page."""
    if request.path.startswith("/api/"):
        return api_error(code, message)
    if request.path.startswith("/v1/"):
        return openai_error(code, openai_message or message)
    return None


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    answer = _api_error(
        request,
        ErrorCode.NOT_FOUND,
        "No such route.",
        openai_message=f"Unknown URL {request.path}.",
    )
    return answer or render(request, "404.html", status=404)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """403. The reason is shown when the code gave one (PermissionDenied("Only owners…"))."""
    reason = str(exception or "")
    answer = _api_error(request, ErrorCode.INSUFFICIENT_SCOPE, reason or None)
    return answer or render(request, "403.html", {"reason": reason}, status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    """500. Rendered without the request's context: whatever failed (the database, a context
    processor) is not asked again, so the page itself cannot fail the same way."""
    answer = _api_error(request, ErrorCode.INTERNAL, "Something went wrong on our side.")
    if answer is not None:
        return answer
    try:
        return HttpResponseServerError(loader.get_template("500.html").render())
    except Exception:  # the page's last resort: never a second traceback instead of a page
        logger.exception("the 500 page could not be rendered")
        return HttpResponseServerError("<h1>Something went wrong on our side</h1>")

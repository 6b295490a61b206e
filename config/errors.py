"""Django's 404 for the whole site: a program under /api/ or /v1/ gets the JSON error of its
API (a path no route matches, such as a thread id that is not a number); people get the page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.defaults import page_not_found as page

from api.errors import api_error, openai_error
from ontology.errors import ErrorCode


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return api_error(ErrorCode.NOT_FOUND, "No such route.")
    if request.path.startswith("/v1/"):
        return openai_error(ErrorCode.NOT_FOUND, f"Unknown URL {request.path}.")
    return page(request, exception)

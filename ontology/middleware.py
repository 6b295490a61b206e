"""The edge of every request: refuse characters the database cannot store, then resolve the
active group once and scope everything below to it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

from ontology.scoping import group_scope
from ontology.selectors import group_for_user, groups_for_user

SESSION_KEY = "active_group_id"

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REFUSAL = "Your request contained a character we can't accept ({what})."


class ActiveGroupMiddleware:
    """Sets `request.group` (with `.role`) and activates its scope for the view.

    The group comes from the session when the user still belongs to it, else
    the user's first group. Users with no group get `request.group = None` and
    no scope, so any tenant-owned query they reach fails closed.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.group = None
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return self.get_response(request)
        group = None
        wanted = request.session.get(SESSION_KEY)
        if wanted is not None:
            group = group_for_user(user=user, group_id=wanted)
        if group is None:
            group = groups_for_user(user=user).first()
            if group is not None:
                request.session[SESSION_KEY] = group.pk
        if group is None:
            return self.get_response(request)
        request.group = group
        with group_scope(group):
            return self.get_response(request)


class RefuseUnstorableCharactersMiddleware:
    """Answers 400 with a sentence when a query or form value or name holds a NUL or a lone
    surrogate, before any view runs: PostgreSQL cannot store NUL in text and a surrogate
    cannot be written as UTF-8, so either would otherwise end in a 500 wherever it is used.

    Reads request.POST and FILES (parsed once and kept), never request.body.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = unstorable_refusal(request)
        return refusal if refusal is not None else self.get_response(request)


def unstorable_refusal(request: HttpRequest) -> HttpResponse | None:
    """The 400 for a request holding a character the database cannot store, or None."""
    for text in _texts(request):
        found = UNSTORABLE.search(text)
        if found is not None:
            what = "a NUL byte" if found.group() == "\x00" else "an unpaired surrogate"
            return HttpResponseBadRequest(
                REFUSAL.format(what=what), content_type="text/plain; charset=utf-8"
            )
    return None


def _texts(request: HttpRequest) -> Iterator[str]:
    for data in (request.GET, request.POST):
        for key, values in data.lists():
            yield key
            yield from values
    for key, files in request.FILES.lists():
        yield key
        yield from (upload.name or "" for upload in files)

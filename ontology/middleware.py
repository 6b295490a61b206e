"""Resolve the active group once per request, at the edge, and scope everything below to it."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from ontology.scoping import group_scope
from ontology.selectors import group_for_user, groups_for_user

SESSION_KEY = "active_group_id"


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

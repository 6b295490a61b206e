"""Who may reach a page, by role in the active group: one check per role, written once.

    @member_required     any member of the active group (404 without one)
    @manager_required    the group's owners and admins (403 for its members)
    @superuser_required  platform superusers (404 for everyone else: the page is not there)

Objects named in a URL are reached through one `access_<thing>_by_id` helper per
entity (chat/access.py for threads and messages), which answers missing and forbidden
alike. `tests/test_isolation_matrix.py` holds every route to its rule.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from ontology.models import Group, Membership


def is_manager(group: Group | None) -> bool:
    """An owner or admin of the group (`group.role`, as the active group carries it)."""
    return getattr(group, "role", None) in Membership.ADMIN_ROLES


def member_group(request: HttpRequest) -> Group:
    """The active group; 404 for a user who belongs to none."""
    if getattr(request, "group", None) is None:
        raise Http404("No organisation.")
    return request.group


def manager_group(request: HttpRequest) -> Group:
    """The active group, for its owners and admins; 403 for its members."""
    group = member_group(request)
    if not is_manager(group):
        raise PermissionDenied("Only the organisation's owners and admins can do this.")
    return group


def _requiring(check: Callable[[HttpRequest], Any]) -> Callable:
    def decorator(view: Callable) -> Callable:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            check(request)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def _superuser(request: HttpRequest) -> None:
    if not request.user.is_superuser:
        raise Http404("No such page.")


member_required = _requiring(member_group)
manager_required = _requiring(manager_group)
superuser_required = _requiring(_superuser)

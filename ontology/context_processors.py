from django.http import HttpRequest

from ontology.access import is_manager
from ontology.preferences import theme_of
from ontology.selectors import groups_for_user


def active_group(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    group = getattr(request, "group", None)
    return {
        "active_group": group,
        "manages": is_manager(group),
        "user_groups": groups_for_user(user=user),
    }


def theme(request: HttpRequest) -> dict:
    """`theme`: "system", "light" or "dark", for `<html data-theme>`."""
    return {"theme": theme_of(getattr(request, "user", None))}

from django.http import HttpRequest

from ontology.selectors import groups_for_user


def active_group(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "active_group": getattr(request, "group", None),
        "user_groups": groups_for_user(user=user),
    }

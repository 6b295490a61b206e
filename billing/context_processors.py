from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from billing.selectors import BudgetStatus, budget_status
from ontology.models import Membership


def _warning(group) -> BudgetStatus | None:
    status = budget_status(group=group)
    return status if status.warning else None


def budget(request: HttpRequest) -> dict:
    """`budget_banner` for owners and admins once the month's budget is mostly used.

    Lazy: the two queries run only when a template shows the banner.
    """
    group = getattr(request, "group", None)
    if group is None or getattr(group, "role", None) not in Membership.ADMIN_ROLES:
        return {}
    return {"budget_banner": SimpleLazyObject(lambda: _warning(group))}

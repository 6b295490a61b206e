from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from billing.selectors import BudgetStatus, budget_status
from ontology.access import is_manager


def _warning(group) -> BudgetStatus | None:
    status = budget_status(group=group)
    return status if status.warning else None


def budget(request: HttpRequest) -> dict:
    """`budget_banner` for owners and admins once the month's budget is mostly used.

    Lazy: the two queries run only when a template shows the banner.
    """
    group = getattr(request, "group", None)
    if not is_manager(group):
        return {}
    return {"budget_banner": SimpleLazyObject(lambda: _warning(group))}

from decimal import ROUND_HALF_UP, Decimal

from django import template

register = template.Library()


@register.filter
def money(value) -> str:
    """Dollars for people: cents from a dollar up, four places below (a call costs fractions)."""
    if value is None or value == "":
        return "—"
    amount = Decimal(value)
    places = Decimal("0.01") if abs(amount) >= 1 or amount == 0 else Decimal("0.0001")
    return f"${amount.quantize(places, rounding=ROUND_HALF_UP):,}"


@register.filter
def tokens(value) -> str:
    return "—" if value is None else f"{int(value):,}"

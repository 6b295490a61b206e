"""What a model call costs: prices per million tokens, and the deployment's overrides.

The catalog (agents.catalog) lists each model's list price; a superuser may override
it (admin: price overrides). The ledger copies the price into each row at call time,
so a later change never rewrites the past.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.models import MAX_MODEL_CHARS, PriceOverride

__all__ = ["MAX_MODEL_CHARS", "Prices", "price_override"]


@dataclass(frozen=True)
class Prices:
    """Dollars per million tokens, as charged at the moment of a call."""

    input: Decimal
    output: Decimal
    cached_input: Decimal


def price_override(*, provider: str, model: str) -> Prices | None:
    """The deployment's own price for the model, if a superuser set one."""
    override = PriceOverride.objects.filter(provider=provider, model=model).first()
    if override is None:
        return None
    return Prices(
        override.input_per_million,
        override.output_per_million,
        override.cached_input_per_million,
    )

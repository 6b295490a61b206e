"""What a model call costs: prices per million tokens.

The catalog (agents.catalog) lists each model's list price; a superuser may override
it (admin: price overrides, read through billing.price_overrides). The ledger copies the
price into each row at call time, so a later change never rewrites the past.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.models import MAX_MODEL_CHARS

__all__ = ["MAX_MODEL_CHARS", "Prices"]


@dataclass(frozen=True)
class Prices:
    """Dollars per million tokens, as charged at the moment of a call."""

    input: Decimal
    output: Decimal
    cached_input: Decimal

"""The deployment's price overrides, kept in each process and checked against one version.

Every provider call is priced when its ledger row is made, inside the transaction that
saves a turn's answer; reading the override from Postgres there cost a query per call
for a table a superuser edits a few times a year. So each process keeps the whole table
(a handful of rows) and, before using it, reads one version token in Redis
(ontology.versions: one GET). Saving or deleting a PriceOverride (the admin, through
Django's signals: billing.apps) bumps the token when it commits, so the very next call
in every process reads the table again. The token is read before the rows, so a change
committed in between leaves rows under an old token (read again next time), never old
rows under a new one. A bulk `QuerySet.update()` sends no signal: call
`bump_price_overrides()` after one.

Without Redis nothing is priced from here: the call's own row is read from the database.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from billing.models import PriceOverride
from billing.pricing import Prices
from ontology.versions import bump_version, version

logger = logging.getLogger(__name__)

VERSION_KEY = "price-overrides"

_FIELDS = ("input_per_million", "output_per_million", "cached_input_per_million")

# (version, {(provider, model): prices}); replaced whole, never changed in place.
_held: tuple[str, dict[tuple[str, str], Prices]] | None = None


def price_override(*, provider: str, model: str) -> Prices | None:
    """The deployment's own price for the model, if a superuser set one (sync: may read
    the database)."""
    global _held
    try:
        current = version(VERSION_KEY)
    except RedisError:
        logger.warning(
            "Redis unreachable: the price of %s/%s is read from the database", provider, model
        )
        return _read_one(provider=provider, model=model)
    held = _held
    if held is None or held[0] != current:
        overrides = _read_all()
        if current is None:  # bumped again while it was being made: keep nothing
            return overrides.get((provider, model))
        held = _held = (current, overrides)
    return held[1].get((provider, model))


def bump_price_overrides(**kwargs) -> None:
    """Make every process read the overrides again once this commits (a signal receiver)."""
    bump_version(VERSION_KEY)


def forget_price_overrides() -> None:
    """Drop this process's copy (tests; or an operator after editing rows by hand)."""
    global _held
    _held = None


def _read_all() -> dict[tuple[str, str], Prices]:
    return {
        (provider, model): Prices(*prices)
        for provider, model, *prices in PriceOverride.objects.values_list(
            "provider", "model", *_FIELDS
        )
    }


def _read_one(*, provider: str, model: str) -> Prices | None:
    row = PriceOverride.objects.filter(provider=provider, model=model).values_list(*_FIELDS).first()
    return None if row is None else Prices(*row)

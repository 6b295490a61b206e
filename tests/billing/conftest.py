"""Billing fixtures: ledger rows priced so that one token is a tenth of a cent."""

import uuid
from datetime import datetime, time
from decimal import Decimal

import pytest
from django.utils import timezone

from agents.catalog import Prices
from billing.models import AICall, PriceOverride
from billing.price_overrides import forget_price_overrides
from billing.services import LedgerEntry, Usage, ai_calls_record
from ontology.scoping import scopes_disabled

# $1000 per million tokens: 1 input token = $0.001, 1 output token = $0.002.
PRICES = Prices(Decimal("1000"), Decimal("2000"), Decimal("500"))


def entry(
    group,
    *,
    input_tokens: int = 100,
    output_tokens: int = 0,
    cached_tokens: int = 0,
    model: str = "sim-gpt",
    provider: str = "simulator",
    user=None,
    agent=None,
    status: str = "ok",
) -> LedgerEntry:
    return LedgerEntry(
        id=uuid.uuid4(),
        group_id=group.pk,
        user_id=getattr(user, "pk", None),
        agent_id=getattr(agent, "pk", None),
        thread_id=None,
        run_id=uuid.uuid4(),
        purpose="chat",
        provider=provider,
        model=model,
        step=0,
        attempt=0,
        usage=Usage(input_tokens, output_tokens, cached_tokens),
        prices=PRICES,
        latency_ms=120,
        ttft_ms=40,
        status=status,
    )


def spend(group, dollars: str, **kwargs) -> LedgerEntry:
    """Record one call of exactly `dollars` (whole tenths of a cent) through the ledger."""
    tokens = int(Decimal(dollars) / Decimal("0.001"))
    one = entry(group, input_tokens=tokens, **kwargs)
    ai_calls_record(entries=[one])
    return one


def record_on(day, group, **kwargs) -> AICall:
    """A ledger row dated on a past day (the ledger itself only ever writes 'now')."""
    one = entry(group, **kwargs)
    ai_calls_record(entries=[one])
    moment = timezone.make_aware(datetime.combine(day, time(12, 0)))
    with scopes_disabled():
        AICall.objects.filter(pk=one.id).update(created_at=moment)
        return AICall.objects.get(pk=one.id)


@pytest.fixture
def price_overrides(transactional_db):
    """For a test that sets price overrides: they are deleted through the ORM at its end, so
    the deletion bumps their version (the database's flush between tests sends no signal,
    and would leave this process's copy of them behind for the next test)."""
    forget_price_overrides()
    yield
    PriceOverride.objects.all().delete()

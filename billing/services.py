"""Write paths for the usage ledger."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from agents.catalog import Prices
from billing.models import COST_QUANTUM, AICall

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    exact: bool = True


def cost_of(*, prices: Prices, usage: Usage) -> Decimal:
    """Dollars for one call. Input tokens include the cached ones, which have their own price."""
    cached = min(usage.cached_tokens, usage.input_tokens)
    total = (
        (usage.input_tokens - cached) * prices.input
        + cached * prices.cached_input
        + usage.output_tokens * prices.output
    ) / MILLION
    return total.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class LedgerEntry:
    """One provider call, ready to be written. `id` is deterministic per call."""

    id: uuid.UUID
    group_id: int
    user_id: int | None
    agent_id: int | None
    thread_id: int | None
    run_id: uuid.UUID | None
    purpose: str
    provider: str
    model: str
    step: int
    attempt: int
    usage: Usage
    prices: Prices
    latency_ms: int
    ttft_ms: int | None
    status: str
    error_code: str = ""

    @property
    def cost(self) -> Decimal:
        return cost_of(prices=self.prices, usage=self.usage)


def ai_calls_record(*, entries: list[LedgerEntry]) -> None:
    """Insert the rows; one whose id is already there is skipped: replays never double-charge."""
    AICall.objects.bulk_create(
        [
            AICall(
                id=e.id,
                group_id=e.group_id,
                user_id=e.user_id,
                agent_id=e.agent_id,
                thread_id=e.thread_id,
                run_id=e.run_id,
                purpose=e.purpose,
                provider=e.provider,
                model=e.model,
                step=e.step,
                attempt=e.attempt,
                input_tokens=e.usage.input_tokens,
                output_tokens=e.usage.output_tokens,
                cached_tokens=e.usage.cached_tokens,
                usage_exact=e.usage.exact,
                input_price=e.prices.input,
                output_price=e.prices.output,
                cached_price=e.prices.cached_input,
                cost=e.cost,
                latency_ms=e.latency_ms,
                ttft_ms=e.ttft_ms,
                status=e.status,
                error_code=e.error_code,
            )
            for e in entries
        ],
        ignore_conflicts=True,
    )

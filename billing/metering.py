"""Every provider call's way through billing, written once.

    call = MeteredCall(group=group, purpose=AICall.Purpose.TITLE, provider=..., model=...)
    with metered(call, hold=(list_prices, worst_case), prices=lambda: prices_now):
        ...make the call; set call.usage (and call.fail(code) / call.stop())...

Entering holds the call's worst case against the month's budget (QuotaExceeded, and no
call, when it is used up); leaving writes its one ledger row, priced as of now, and
settles the hold in the same transaction, whatever the call's end: an exception inside
the block is metered as a failure with its `code`. A caller that must write the row
inside its own transaction calls `call.record(...)` there; leaving then writes nothing
more. `async with metered(...)` is the same on the event loop: its two database steps
run on the request pool (ontology.db_async).

A call whose caller writes more at once right after it (an agent run's last call, then
its answer) may `call.defer()` inside the block: leaving then writes nothing, and the
row, priced then, is written with the hold settled by `settle(...)` inside the caller's
own transaction: one trip to the database and one transaction fewer per turn.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from django.db import transaction

from billing.models import AICall
from billing.pricing import Prices
from billing.selectors import cached_plan
from billing.services import (
    LedgerEntry,
    Usage,
    ai_calls_record,
    budget_release,
    budget_reserve,
    cost_of,
)
from ontology.db_async import db_call
from ontology.models import Group, User

logger = logging.getLogger(__name__)

Hold = tuple[Prices, Usage]  # the prices and the worst-case usage a call holds budget for


class MeteredCall:
    """One provider call: who made it, what it used, how it ended, and its ledger row."""

    def __init__(
        self,
        *,
        group: Group,
        purpose: str,
        provider: str,
        model: str,
        call_id: uuid.UUID | None = None,
        user: User | None = None,
        user_id: int | None = None,
        agent_id: int | None = None,
        thread_id: int | None = None,
        run_id: uuid.UUID | None = None,
        step: int = 0,
        attempt: int = 0,
    ) -> None:
        self.group, self.purpose, self.provider, self.model = group, purpose, provider, model
        self.id = call_id or uuid.uuid4()
        self.user, self.agent_id, self.thread_id, self.run_id = user, agent_id, thread_id, run_id
        self.user_id = user_id if user_id is not None else getattr(user, "pk", None)
        self.step, self.attempt = step, attempt
        self.usage = Usage()
        self.status = AICall.Status.OK
        self.error_code = ""
        self.reservation: uuid.UUID | None = None
        self.entry: LedgerEntry | None = None
        self.written = False
        self.deferred: Callable[[], Prices] | None = None  # the prices, once left deferred
        self._defer = False
        self._started = time.monotonic()
        self._ended: float | None = None
        self._first_token: float | None = None

    def fail(self, code: str) -> None:
        self.status, self.error_code = AICall.Status.FAILED, code

    def stop(self) -> None:
        self.status = AICall.Status.STOPPED

    def defer(self) -> None:
        """Leave the ledger row to the caller's `settle(...)`, in its own transaction."""
        self._defer = True

    def first_token(self) -> None:
        if self._first_token is None:
            self._first_token = time.monotonic()

    def hold(self, *, prices: Prices, worst: Usage) -> None:
        """Hold the worst case against the month's budget (QuotaExceeded when used up)."""
        self.reservation = budget_reserve(
            group=self.group,
            user=self.user,
            run_id=self.run_id,
            cost=cost_of(prices=prices, usage=worst),
            tokens=worst.input_tokens + worst.output_tokens,
            purpose=self.purpose,
        )

    def ledger_entry(self, *, prices: Prices) -> LedgerEntry:
        """The call's row as it stands now (kept on the call for a later retry of the write)."""
        now = self._ended or time.monotonic()
        self.entry = LedgerEntry(
            id=self.id,
            group_id=self.group.pk,
            user_id=self.user_id,
            agent_id=self.agent_id,
            thread_id=self.thread_id,
            run_id=self.run_id,
            purpose=self.purpose,
            provider=self.provider,
            model=self.model,
            step=self.step,
            attempt=self.attempt,
            usage=self.usage,
            prices=prices,
            latency_ms=int((now - self._started) * 1000),
            ttft_ms=int((self._first_token - self._started) * 1000) if self._first_token else None,
            status=self.status,
            error_code=self.error_code,
        )
        return self.entry

    def record(self, *, prices: Prices) -> LedgerEntry:
        """Write the ledger row and settle the hold (a replayed row is skipped)."""
        entry = self.entry if self.entry is not None else self.ledger_entry(prices=prices)
        ai_calls_record(entries=[entry], settle=[self.reservation] if self.reservation else [])
        _written_on_commit([self])
        return entry


def price_deferred(calls: list[MeteredCall]) -> None:
    """Make the rows of the calls left deferred (sync: a price may be read from the
    database), so the caller can count them before `settle` writes them."""
    for call in calls:
        if call.deferred is not None and call.entry is None:
            call.ledger_entry(prices=call.deferred())


def settle(calls: list[MeteredCall], *, group: Group) -> None:
    """Write the rows left deferred or whose write failed, and give back every hold still
    open (a call that broke off before its row): what a run does last, inside its own
    transaction when it has one, so nothing stays held or unmetered."""
    price_deferred(calls)
    pending = [c for c in calls if c.entry is not None and not c.written]
    unsettled = [c.reservation for c in calls if c.reservation and not c.written]
    if pending:
        ai_calls_record(entries=[c.entry for c in pending], settle=unsettled)
        _written_on_commit(pending)
    elif unsettled:
        budget_release(group=group, reservation_ids=unsettled)


def _written_on_commit(calls: list[MeteredCall]) -> None:
    """Mark the rows written once they are: inside a caller's transaction that then rolls
    back (an answer the database refused), they are still to write."""

    def written() -> None:
        for call in calls:
            call.written = True

    transaction.on_commit(written)


def unbudgeted(group: Group) -> bool:
    """The group's plan (as this process read it in the last few seconds) has no budget, so
    a call holds nothing: no trip to the database on the way to the first token."""
    plan = cached_plan(group)
    return plan is not None and plan.monthly_budget is None and plan.monthly_token_budget is None


def _enter(call: MeteredCall, hold: Hold | None) -> None:
    if hold is not None:
        call.hold(prices=hold[0], worst=hold[1])


def _note_error(call: MeteredCall, error: BaseException | None) -> None:
    """An exception inside the block is metered as a failure with its `code`."""
    if error is not None and call.status == AICall.Status.OK:
        call.fail(getattr(error, "code", "internal"))


def _leave(call: MeteredCall, prices: Callable[[], Prices], error: BaseException | None) -> None:
    """Record the call unless the block did; a failing write is logged, the entry kept."""
    _note_error(call, error)
    if call.written:
        return
    try:
        call.record(prices=prices())
    except Exception:
        logger.exception("the ledger row of call %s could not be written", call.id)


class metered:
    """Hold the call's budget on entering, write its ledger row on leaving (see the module
    docstring). `with` in sync code; `async with` on the event loop, where the two database
    steps run on the request pool."""

    def __init__(
        self, call: MeteredCall, *, prices: Callable[[], Prices], hold: Hold | None = None
    ) -> None:
        self.call, self.prices, self.hold = call, prices, hold

    def __enter__(self) -> MeteredCall:
        _enter(self.call, self.hold)
        return self.call

    def __exit__(self, kind, error, traceback) -> None:
        _leave(self.call, self.prices, error)

    async def __aenter__(self) -> MeteredCall:
        if self.hold is not None and not unbudgeted(self.call.group):
            await db_call(_enter)(self.call, self.hold)
        return self.call

    async def __aexit__(self, kind, error, traceback) -> None:
        call = self.call
        if call._defer and not call.written:
            _note_error(call, error)
            call._ended, call.deferred = time.monotonic(), self.prices
            return
        await db_call(_leave)(call, self.prices, error)

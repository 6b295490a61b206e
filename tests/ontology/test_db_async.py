"""ontology.db_async.TogetherOnOneTrip: calls made in the same turn of the event loop run on
one trip to a database thread, each with its own answer or error, in its own caller's
context (its tenant scope). ManyOnOneTrip: the calls of a turn answered by one call of a
function that takes them all."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import pytest
from django.db import connection

from ontology.db_async import ManyOnOneTrip, TogetherOnOneTrip, db_call, log_call
from ontology.scoping import active_group, group_scope
from ontology.turn_batches import Failed

# A trip tidies the database connections around its calls (db_call), as every trip does.
pytestmark = pytest.mark.django_db


def where(n: int) -> tuple[int, int]:
    if n < 0:
        raise ValueError(f"no {n}")
    return n * 2, threading.get_ident()


async def test_calls_of_one_turn_share_a_trip_each_with_its_own_answer_or_error():
    together = TogetherOnOneTrip()
    answers = await asyncio.gather(
        *(together(where, n) for n in (1, 2, -3, 4)), return_exceptions=True
    )
    assert [a[0] for a in answers if isinstance(a, tuple)] == [2, 4, 8]
    assert isinstance(answers[2], ValueError) and str(answers[2]) == "no -3"
    threads = {a[1] for a in answers if isinstance(a, tuple)}
    assert len(threads) == 1 and threading.get_ident() not in threads  # one database thread
    assert together.largest == 4


async def test_a_later_turns_calls_go_on_their_own_trip():
    together = TogetherOnOneTrip()
    assert (await together(where, 1))[0] == 2
    assert (await together(where, 2))[0] == 4
    assert together.largest == 1


async def test_many_answers_the_calls_of_a_turn_in_one_call_each_with_its_own_outcome():
    seen: list[list[tuple]] = []

    def doubled(calls: list[tuple]) -> list:
        seen.append(calls)
        return [Failed(ValueError(f"no {n}")) if n < 0 else (n * 2, m) for n, m in calls]

    many = ManyOnOneTrip(doubled)
    answers = await asyncio.gather(*(many(n, n + 10) for n in (1, -2, 3)), return_exceptions=True)
    assert answers[0] == (2, 11) and answers[2] == (6, 13)
    assert isinstance(answers[1], ValueError) and str(answers[1]) == "no -2"
    assert seen == [[(1, 11), (-2, 8), (3, 13)]]  # one call, with every caller's arguments
    assert await many(4, 0) == (8, 0)  # a later turn: a call of its own
    assert len(seen) == 2


async def test_many_raising_or_answering_short_fails_every_caller_of_its_turn():
    def broken(calls: list[tuple]) -> list:
        raise RuntimeError("the database is away")

    short = ManyOnOneTrip(lambda calls: calls[:1])
    answers = await asyncio.gather(
        ManyOnOneTrip(broken)(1), short(1), short(2), return_exceptions=True
    )
    assert isinstance(answers[0], RuntimeError) and str(answers[0]) == "the database is away"
    assert all(isinstance(a, RuntimeError) for a in answers[1:])  # nobody gets another's answer
    assert "answered 1 of 2" in str(answers[1])
    assert short.largest == 2


def scoped() -> int | None:
    group = active_group()
    return group.pk if group is not None else None


async def test_each_call_runs_in_its_own_callers_tenant_scope(tenant_a, tenant_b):
    together = TogetherOnOneTrip()

    async def as_(group):
        if group is None:
            return await together(scoped)
        with group_scope(group):
            return await together(scoped)

    # whoever queues first, none of the trip runs in their scope but their own call
    groups = (tenant_a.group, None, tenant_b.group, tenant_a.group)
    answers = await asyncio.gather(*(as_(g) for g in groups))
    assert answers == [tenant_a.group.pk, None, tenant_b.group.pk, tenant_a.group.pk]
    assert together.largest == 4


async def test_a_cancelled_caller_leaves_the_others_their_answers():
    together = TogetherOnOneTrip()
    cancelled = asyncio.ensure_future(together(where, 1))
    kept = asyncio.ensure_future(together(where, 2))
    await asyncio.sleep(0)  # both are queued for the same trip
    cancelled.cancel()
    assert (await kept)[0] == 4
    assert cancelled.cancelled()


def broken_or_read(n: int) -> int:
    """Breaks its database connection for n < 0 (as a restarted server would), else reads."""
    from django.db import connection

    if n < 0:
        connection.ensure_connection()
        connection.connection.close()  # the server's side is gone
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s", [n])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
async def test_a_call_that_breaks_its_connection_does_not_fail_the_next_one():
    together = TogetherOnOneTrip()
    answers = await asyncio.gather(
        *(together(broken_or_read, n) for n in (1, -1, 2)), return_exceptions=True
    )
    assert answers[0] == 1 and answers[2] == 2
    assert isinstance(answers[1], Exception)
    assert together.largest == 3


async def test_a_callers_answer_comes_back_within_two_turns_of_the_loop_after_its_trip():
    """The thread hands the answers back in one callback, each caller goes on at the turn
    after: the turns of the loop between a trip's end and its callers going on are each a
    wait behind every other stream when the loop is busy. (Through db_call they were four:
    the executor's future, asgiref's shield, the batch's task, the caller.)"""
    loop = asyncio.get_running_loop()
    turns, answered = 0, False

    def tick() -> None:
        nonlocal turns
        if not answered:
            turns += 1
            loop.call_soon(tick)

    def counted(n: int) -> int:
        loop.call_soon_threadsafe(tick)  # from here, each turn of the loop counts one
        return n

    together = TogetherOnOneTrip()
    assert await together(counted, 7) == 7
    answered = True  # the ticks stop
    # 2; 3 when the loop takes its next turn between the tick's callback and the answers'
    assert turns <= 3


async def test_a_trip_the_pool_refuses_fails_its_callers_and_leaves_none_waiting(monkeypatch):
    from ontology import db_async

    stopped = ThreadPoolExecutor(max_workers=1)
    stopped.shutdown()  # as the process stops
    monkeypatch.setattr(db_async, "_request_pool", lambda: stopped)
    together = TogetherOnOneTrip()
    answers = await asyncio.gather(*(together(where, n) for n in (1, 2)), return_exceptions=True)
    assert all(isinstance(a, RuntimeError) for a in answers), answers


def holds_a_connection() -> bool:
    """Whether this thread held an open connection before this call's query, then queries."""
    held = connection.connection is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return held


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("call", [db_call, log_call], ids=["db_call", "log_call"])
async def test_a_call_gives_its_connection_back_while_a_test_waits_on_a_socket(call):
    """channels' test communicator turns `channels.db.close_old_connections` off while a test
    waits on a socket (as below); our calls tidy their connections all the same, so no pool
    thread keeps one checked out for the next test."""
    with mock.patch("channels.db.close_old_connections", lambda: None):
        # one thread (the log writer's, or the only one free): each call sees the last
        for _ in range(2):
            assert not await call(holds_a_connection)()

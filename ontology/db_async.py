"""Database work from async code, on worker threads that do not queue behind each other.

channels' `database_sync_to_async` defaults to asgiref's thread-sensitive mode: every
call in the process, from every socket and run, waits its turn on one shared thread. Each
of our calls is a whole unit of work (its own pooled connection, its own transaction, the
tenant scope carried in the context), so it can run on any thread:

* `db_call`: what someone is waiting for (connecting, sending, starting and finishing a
  run) runs on the request pool;
* `log_call`: the run log's writes (one writer per process, see chat/runlog.py) run on a
  thread of their own, so they never wait behind, or delay, a send or a run start.

The request pool and the log thread stay within the database connection pool
(DATABASE_POOL_MAX_SIZE).
"""

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import SyncToAsync, sync_to_async
from django.conf import settings
from django.db import close_old_connections

from ontology.turn_batches import Failed, TurnBatcher

_executors: dict[str, ThreadPoolExecutor] = {}
# a call sharing a trip (TogetherOnOneTrip): its caller's context, the function, its arguments
_Call = tuple[contextvars.Context, Callable[..., Any], tuple, dict]


def _executor(name: str, threads: int) -> ThreadPoolExecutor:
    if name not in _executors:
        _executors[name] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
    return _executors[name]


def _request_pool() -> ThreadPoolExecutor:
    return _executor("db", settings.PARLEY_DB_THREADS)


class _Tidied(SyncToAsync):
    """channels' `database_sync_to_async`, its tidying called here: the thread's connection
    goes back to the pool before and after each call. channels' own is looked up as
    `channels.db.close_old_connections`, which its test communicator turns off, process-wide,
    while a test waits on a socket (for tests that share one connection in a transaction):
    every call made meanwhile left its pool thread holding a connection, so a later test
    found the pool short, or a query that opened no connection."""

    def thread_handler(self, loop, *args, **kwargs):
        with _connections_tidied():
            return super().thread_handler(loop, *args, **kwargs)


@contextlib.contextmanager
def _connections_tidied():
    """The thread's stale or used-up connections given back before and after the work."""
    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()


def db_call(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a sync function that uses the database on the request pool (connections tidied)."""
    return _Tidied(func, thread_sensitive=False, executor=_request_pool())


def log_call(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a run-log write on the log writer's own thread (connections tidied)."""
    return _Tidied(func, thread_sensitive=False, executor=_executor("run-log", 1))


def io_call(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a sync function that blocks on something else (the cache) on the request pool."""
    return sync_to_async(func, thread_sensitive=False, executor=_request_pool())


class TogetherOnOneTrip(TurnBatcher):
    """Calls made through it in the same turn of the event loop run on one trip to the
    request pool (one after the other there, each with its own answer or error;
    ontology.turn_batches): a trip costs a pool thread's wake-up, a connection taken from
    the pool and given back, and the event loop's share of the hop, some 0.3 ms of CPU a
    call with a query, about as much as a socket's open reads. 100 sockets opening at
    once cost 100-143 ms of CPU a trip each, 36-44 ms on one trip.

    Each call runs in a copy of its caller's context, as db_call's would: its tenant scope
    is its own, whoever shares the trip. What a call changes in its context stays there
    (db_call would hand it back to the caller). One instance per kind of work, so a call
    someone waits for does not queue behind work of another kind.

    The trip is handed to the pool from a callback, and the thread hands each caller its
    answer with one callback: each caller goes on at the loop's next turn. Through db_call
    (a task awaiting asgiref's shielded executor future) the answers took four turns of
    the loop to come back, each a wait behind every stream's deltas when the loop is busy:
    at 200 streams, a start's trip came back 4-7 ms after its thread had finished (p50),
    35-51 ms at p95."""

    async def __call__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await self.submit((contextvars.copy_context(), func, args, kwargs))

    def _launch(self, loop: asyncio.AbstractEventLoop, batch: list) -> None:
        loop.call_soon(self._hand_over, loop, batch, context=contextvars.Context())

    def _hand_over(self, loop: asyncio.AbstractEventLoop, batch: list) -> None:
        work = functools.partial(self._work, self._taken(batch))
        try:
            _request_pool().submit(_trip, loop, batch, work)
        except RuntimeError as error:  # the pool is shut down (the process is stopping)
            self._fail(batch, error)

    def _work(self, calls: list[_Call]) -> list[Any]:
        """On the pool thread: each call's outcome (`Failed` for its own error)."""
        return _each(calls)


class ManyOnOneTrip(TogetherOnOneTrip):
    """As TogetherOnOneTrip, but the calls of a turn are answered by one call of `many`
    with all their arguments, on one trip: it reads for all of them at once (one
    statement, one cache read) where the calls one by one made a round trip each. `many`
    gets a list of argument tuples and gives one outcome each, in order (`Failed` for an
    item's own error); an error it raises fails them all. It runs in a context of its own:
    what it reads must not depend on its callers' tenant scope."""

    def __init__(self, many: Callable[[list[tuple]], list[Any]]) -> None:
        super().__init__()
        self.many = many

    async def __call__(self, *args: Any) -> Any:  # type: ignore[override]
        return await self.submit(args)

    def _work(self, calls: list[tuple]) -> list[Any]:
        outcomes = contextvars.Context().run(self.many, calls)
        if len(outcomes) != len(calls):
            raise RuntimeError(f"{self.many.__qualname__} answered {len(outcomes)} of {len(calls)}")
        return outcomes


def _trip(
    loop: asyncio.AbstractEventLoop,
    batch: list[tuple[Any, asyncio.Future]],
    work: Callable[[], list[Any]],
) -> None:
    """On a pool thread: the work, between the connections' tidying (as db_call's), then
    its outcomes to the loop in one callback."""
    try:
        with _connections_tidied():
            outcomes = work()
    except BaseException as error:  # not a call's own: the trip's (its tidying)
        settle, answer = TurnBatcher._fail, error
    else:
        settle, answer = TurnBatcher._settle, outcomes
    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
        loop.call_soon_threadsafe(settle, batch, answer)


def _each(calls: list[_Call]) -> list[Any]:
    outcomes: list[Any] = []
    for context, func, args, kwargs in calls:
        try:
            outcomes.append(context.run(func, *args, **kwargs))
        except Exception as error:  # this call's own; the others go on
            outcomes.append(Failed(error))
            close_old_connections()  # a connection it broke is not handed to the next call
    return outcomes

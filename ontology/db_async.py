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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import close_old_connections

from ontology.scoping import ScopeError, scope_set

_executors: dict[str, ThreadPoolExecutor] = {}


def _executor(name: str, threads: int) -> ThreadPoolExecutor:
    if name not in _executors:
        _executors[name] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
    return _executors[name]


def _request_pool() -> ThreadPoolExecutor:
    return _executor("db", settings.PARLEY_DB_THREADS)


def db_call(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a sync function that uses the database on the request pool (connections tidied)."""
    return database_sync_to_async(func, thread_sensitive=False, executor=_request_pool())


def log_call(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a run-log write on the log writer's own thread (connections tidied)."""
    executor = _executor("run-log", 1)
    return database_sync_to_async(func, thread_sensitive=False, executor=executor)


def io_call(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a sync function that blocks on something else (the cache) on the request pool."""
    return sync_to_async(func, thread_sensitive=False, executor=_request_pool())


class TogetherOnOneTrip:
    """Calls of one sync function that arrive in the same turn of the event loop, run on
    one trip to the request pool (one after the other there, each with its own answer or
    error): a trip costs a pool thread's wake-up, a connection taken from the pool and
    given back, and the event loop's share of the hop, some 0.3 ms of CPU a call with a
    query, about as much as a socket's open reads. 100 sockets opening at once cost
    100-143 ms of CPU a trip each, 36-44 ms on one trip.

    The calls run in the context of the trip, not of their callers: only for a function
    that takes all it needs as arguments, called outside any tenant scope (a socket's open,
    before its group is known); a call inside one is refused."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self._queued: list[tuple[tuple, dict, asyncio.Future]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._trips: set[asyncio.Task] = set()
        self.largest = 0  # the most calls one trip has carried (for tests and benchmarks)

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if scope_set():
            raise ScopeError(f"{self.func.__qualname__} shares its trip: call it outside a scope.")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._queued is None or self._loop is not loop:
            self._queued, self._loop = [], loop
            trip = loop.create_task(self._trip(self._queued))
            self._trips.add(trip)
            trip.add_done_callback(self._trips.discard)
        self._queued.append((args, kwargs, future))
        return await future

    async def _trip(self, calls: list[tuple[tuple, dict, asyncio.Future]]) -> None:
        if self._queued is calls:  # calls from here on go on the next trip
            self._queued = None
        self.largest = max(self.largest, len(calls))
        try:
            answers = await db_call(_each)(self.func, [(a, k) for a, k, _ in calls])
        except Exception as error:  # the trip itself failed: each call fails with it
            for *_, future in calls:
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException:  # cancelled (the loop closes): nobody waits forever
            for *_, future in calls:
                future.cancel()
            raise
        for (*_, future), (ok, answer) in zip(calls, answers, strict=True):
            if future.done():  # its caller was cancelled
                continue
            if ok:
                future.set_result(answer)
            else:
                future.set_exception(answer)


def _each(func: Callable[..., Any], calls: list[tuple[tuple, dict]]) -> list[tuple[bool, Any]]:
    answers: list[tuple[bool, Any]] = []
    for args, kwargs in calls:
        try:
            answers.append((True, func(*args, **kwargs)))
        except Exception as error:  # this call's own; the others go on
            answers.append((False, error))
            close_old_connections()  # a connection it broke is not handed to the next call
    return answers

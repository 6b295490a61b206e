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

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings

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

"""Database work from async code, on any free worker thread.

channels' `database_sync_to_async` defaults to asgiref's thread-sensitive mode: every
call in the process, from every socket and run, waits its turn on one shared thread. Each
of our calls is a whole unit of work (its own pooled connection, its own transaction, the
tenant scope carried in the context), so it can run on any thread of the loop's pool, and
two hundred streams do not queue behind each other's writes.
"""

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async


def db_call(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a sync function that uses the database on a free thread (connections tidied)."""
    return database_sync_to_async(func, thread_sensitive=False)


def io_call(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a sync function that blocks on something else (the cache) on a free thread."""
    return sync_to_async(func, thread_sensitive=False)

"""Tasks a web process hands to a Celery worker and never hears back from.

Celery's `apply_async` makes a result object for every task it publishes, and that object
builds the app's result backend, which Celery keeps per thread (the Redis backend is not
thread-safe): the first publish on each of a web process's database threads paid for a
backend of its own (entry points scanned, a Redis client made) that a task whose result
nobody reads never uses. `queue` publishes by the task's name with no result object, and
`warm` does the process's one-time part (the task registry, the transport, the producer
pool) when the process starts, not in the first turn that queues a task.
"""

from __future__ import annotations

from typing import Any

from celery import current_app


class Queued:
    """What `queue` gets from Celery in place of a result: the task's id."""

    __slots__ = ("id", "ignored")

    def __init__(self, task_id: str) -> None:
        self.id = task_id
        self.ignored = True


def queue(task: Any, *, kwargs: dict[str, Any], retry: bool = True, **options: Any) -> str:
    """Publish `task` (a Celery task whose result is ignored) with these keyword arguments,
    ids and the like (their repr is the message's log line, as Celery's own would be),
    routed by its name as `apply_async` routes it (`options`: as apply_async's, e.g. a
    queue); the task's id. Raises when the broker refuses it (after Celery's retries,
    unless `retry` is False)."""
    sent = task.app.send_task(
        task.name,
        kwargs=kwargs,
        result_cls=Queued,
        ignore_result=True,
        retry=retry,
        argsrepr="()",
        kwargsrepr=repr(kwargs),
        **options,
    )
    return sent.id


def warm() -> None:
    """The process's one-time set-up for `queue` (sync, no network: connections are made
    on the first publish)."""
    app = current_app._get_current_object()
    app.tasks  # noqa: B018 (finalizes the app: its task registry)
    app.amqp.producer_pool  # noqa: B018 (the transport resolved, the pool made)
    app.amqp.send_task_message  # noqa: B018 (the sender, with its event dispatcher)

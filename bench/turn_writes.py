"""A turn's own writes, alone: the CPU of each row it writes and of queueing its title.

    python -m config.devservers exec -- .venv/bin/python bench/turn_writes.py [--rows 1000]
        [--rounds 5] [--titles 300]

Rows: every chat turn inserts its question, its answer and their audit events, and
updates the answer as it ends and the thread's last activity. `ontology.rows` writes
them with SQL made once per process; the baseline, measured in the same run on the same
tables, is Django's `save()`, which compiles each statement anew. Each round writes
--rows of each kind each way, alternated; the report gives the median over rounds of
the CPU (process time) and wall time per row, and their ratio.

Titles: a new thread's title is queued for a Celery worker from the web process's
database threads. `ontology.queueing.queue` against Celery's `apply_async`, each from a
fresh pool of 12 threads (a web process's database threads, PARLEY_DB_THREADS): the CPU
per publish over each thread's first publishes (--titles spread over the pool), then in
steady state; the tasks go to a queue no worker reads, emptied at the end.

Setup: migrate, one group, its owner, an agent and one thread. Run it alone on a quiet
machine (the load average is printed before and after).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import close_old_connections  # noqa: E402

from bench.common import alternated, one_thread  # noqa: E402
from chat.models import Message  # noqa: E402
from chat.services import FINISHED_FIELDS  # noqa: E402
from chat.tasks import title_thread  # noqa: E402
from config.celery import app  # noqa: E402
from ontology import queueing  # noqa: E402
from ontology.models import Event  # noqa: E402
from ontology.rows import insert, update  # noqa: E402
from ontology.scoping import group_scope  # noqa: E402

QUEUE = "bench-turn-writes"  # no worker reads it


def row_ways(group, user, thread) -> dict[str, dict[str, Callable[[], None]]]:
    """Each kind of row a turn writes: (Django's save(), ontology.rows) doing the same."""

    def event() -> Event:
        return Event(
            group=group,
            type="message.sent",
            actor=user,
            target_type="message",
            target_id="1",
            target_label="A question",
            metadata={"thread_id": thread.pk, "chars": 12},
        )

    def question() -> Message:
        return Message(group=group, thread=thread, role="user", user=user, content="Hello?")

    def answer() -> Message:
        return Message(
            id=uuid.uuid4(),
            group=group,
            thread=thread,
            role="assistant",
            status="streaming",
            run_id=uuid.uuid4(),
        )

    finished = answer()
    finished.save(force_insert=True)

    def finish(message: Message) -> Message:
        message.status, message.content = "complete", "An answer of a few words."
        message.usage = {"input": 20, "output": 8, "cost": "0.0001", "calls": 1}
        return message

    return {
        "audit event (INSERT)": {"save()": lambda: event().save(), "rows": lambda: insert(event())},
        "question (INSERT)": {
            "save()": lambda: question().save(force_insert=True),
            "rows": lambda: insert(question()),
        },
        "answer (INSERT, its own id)": {
            "save()": lambda: answer().save(force_insert=True),
            "rows": lambda: insert(answer()),
        },
        "answer as it ends (UPDATE)": {
            "save()": lambda: finish(finished).save(update_fields=FINISHED_FIELDS),
            "rows": lambda: update(finish(finished), FINISHED_FIELDS),
        },
        "thread's last activity (UPDATE)": {
            "save()": lambda: thread.save(update_fields=["last_activity_at"]),
            "rows": lambda: update(thread, ["last_activity_at"]),
        },
    }


def bench_rows(group, user, thread, args) -> None:
    print(f"rows: {args.rounds} rounds of {args.rows} rows of each kind each way; medians per row")
    with group_scope(group):
        for kind, ways in row_ways(group, user, thread).items():
            timed = alternated(ways, rounds=args.rounds, calls=args.rows)
            cpu = {name: figures[0] * 1e6 for name, figures in timed.items()}
            wall = {name: figures[1] * 1e6 for name, figures in timed.items()}
            print(
                f"  {kind:32s} save(): CPU {cpu['save()']:6.0f} us, wall {wall['save()']:6.0f} us"
                f"   rows: CPU {cpu['rows']:6.0f} us, wall {wall['rows']:6.0f} us"
                f"   CPU ratio {cpu['rows'] / cpu['save()']:.2f}"
            )


def bench_titles(group, user, thread, args) -> None:
    kwargs = {"group_id": group.pk, "thread_id": thread.pk, "user_id": user.pk}
    ways = {  # ours first: the baseline then finds the broker's connections made
        "queueing.queue": lambda: queueing.queue(
            title_thread, kwargs=kwargs, retry=False, queue=QUEUE
        ),
        "apply_async": lambda: title_thread.apply_async(kwargs=kwargs, retry=False, queue=QUEUE),
    }
    queueing.warm()  # what a web process does as it starts (for both ways)
    print(f"titles: {args.titles} publishes from a fresh pool of 12 threads, then as many more")
    try:
        for name, way in ways.items():
            with ThreadPoolExecutor(12) as pool:
                cpu = time.process_time()
                list(pool.map(lambda _, way=way: way(), range(args.titles)))
                first = (time.process_time() - cpu) * 1000 / args.titles
                cpu = time.process_time()
                list(pool.map(lambda _, way=way: way(), range(args.titles)))
                steady = (time.process_time() - cpu) * 1000 / args.titles
                list(pool.map(lambda _: close_old_connections(), range(12)))
            print(f"  {name:16s} CPU per publish: first {first:5.2f} ms, steady {steady:5.2f} ms")
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(QUEUE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--titles", type=int, default=300)
    args = parser.parse_args()
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}")
    group, user, thread = one_thread("Writes bench")
    bench_rows(group, user, thread, args)
    bench_titles(group, user, thread, args)
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""A thread's title, made by its Celery task: the CPU of one task, alone.

    python -m config.devservers exec -- .venv/bin/python bench/title_task.py [--tasks 50]
        [--rounds 5]

Each task is `chat.tasks.title_thread`, run in this process as a worker thread runs it:
an event loop of its own (`asyncio.run`), the thread's first exchange read, the metered
title call to the provider simulator (in its own process, so its CPU is not counted
here), the title saved and announced on the channel layer. The baseline, measured in
the same run on the same threads, is this code with the process's TLS context made again
for every client (`tls_context.cache_clear()` before each task), as every task's client
made its own before the context was shared. Each round makes the --tasks threads untitled
again and runs a task for each, one way and then the other; the report gives the median
over rounds of the CPU (process time) and wall time per task, and their ratio.

Setup: migrate, one group on the enterprise plan, its owner, an agent on the simulator
and --tasks threads, each with a question and its answer. Run it alone on a quiet machine
(the load average is printed before and after).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from agents.providers.registry import tls_context  # noqa: E402
from bench.common import one_thread, simulator_process  # noqa: E402
from chat.models import AIThread, Message  # noqa: E402
from chat.tasks import title_thread  # noqa: E402
from ontology import services  # noqa: E402
from ontology.models import Group, Thing  # noqa: E402
from ontology.scoping import group_scope  # noqa: E402

MODEL = "sim-gpt@text;words=5"


def threads_to_title(count: int) -> tuple[Group, list[AIThread]]:
    """A group on the enterprise plan (no budget to run out), an agent on the simulator and
    `count` threads, each with its first exchange."""
    group, user, _ = one_thread("Title bench", plan=Group.Plan.ENTERPRISE)
    agent = services.thing_create(
        group=group,
        type=Thing.Type.AGENT,
        name="Simulated agent",
        properties={"provider": "simulator", "model": MODEL},
        actor=user,
    )
    threads = []
    with group_scope(group):
        for _ in range(count):
            thread = AIThread.objects.create(group=group, agent=agent, user=user)
            question = Message.objects.create(
                group=group, thread=thread, role="user", user=user, content="Where is our policy?"
            )
            Message.objects.create(
                group=group,
                thread=thread,
                role="assistant",
                content="In the handbook.",
                parent=question,
            )
            threads.append(thread)
    return group, threads


def untitled(group: Group, threads: list[AIThread]) -> None:
    with group_scope(group):
        AIThread.objects.filter(pk__in=[t.pk for t in threads]).update(title="")


def titled_all(group: Group, threads: list[AIThread], *, fresh_tls: bool) -> tuple[float, float]:
    """CPU and wall seconds per task, every thread titled once."""
    cpu, wall = time.process_time(), time.perf_counter()
    for thread in threads:
        if fresh_tls:
            tls_context.cache_clear()
        title = title_thread(group_id=group.pk, thread_id=thread.pk, user_id=thread.user_id)
        if not title:
            raise RuntimeError(f"thread {thread.pk} was not titled")
    count = len(threads)
    return (time.process_time() - cpu) / count, (time.perf_counter() - wall) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}")
    group, threads = threads_to_title(args.tasks)
    ways = {"shared TLS context": False, "a context per client": True}
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    with simulator_process() as url:
        settings.PARLEY_PROVIDER_BASE_URLS["simulator"] = url + "/v1"
        for fresh_tls in ways.values():  # warm-up: connections, statements, imports
            untitled(group, threads[:5])
            titled_all(group, threads[:5], fresh_tls=fresh_tls)
        for _ in range(args.rounds):
            for name, fresh_tls in ways.items():
                untitled(group, threads)
                figures[name].append(titled_all(group, threads, fresh_tls=fresh_tls))
    print(f"title tasks: {args.rounds} rounds of {args.tasks} tasks each way; medians per task")
    medians = {
        name: (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows))
        for name, rows in figures.items()
    }
    for name, (cpu, wall) in medians.items():
        print(f"  {name:22s} CPU {cpu * 1000:6.2f} ms, wall {wall * 1000:6.2f} ms")
    shared, fresh = medians["shared TLS context"][0], medians["a context per client"][0]
    less = (fresh - shared) * 1000
    print(f"  CPU ratio, shared / per client: {shared / fresh:.2f} ({less:.2f} ms less a task)")
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

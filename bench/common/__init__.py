"""What more than one benchmark sets up (a package: `make bench` runs bench/*.py)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from django.core.management import call_command

from chat.models import AIThread
from ontology import services
from ontology.models import Group, Thing, User
from ontology.scoping import group_scope


def one_thread(name: str) -> tuple[Group, User, AIThread]:
    """Migrate, then one group named `name`, its owner, an agent and one thread of theirs."""
    call_command("migrate", verbosity=0)
    slug = f"{name.lower().replace(' ', '-')}-{time.time_ns()}"
    user = User.objects.create_user(username=f"{slug}@bench")
    group = services.group_create(name=name, slug=slug, actor=None, owner=user)
    agent = services.thing_create(
        group=group,
        type=Thing.Type.AGENT,
        name="Agent",
        properties={"provider": "openai", "model": "gpt-4o-mini"},
        actor=user,
    )
    with group_scope(group):
        thread = AIThread.objects.create(group=group, agent=agent, user=user)
    return group, user, thread


def alternated(
    ways: dict[str, Callable[[], object]], *, rounds: int, calls: int, warm: int = 100
) -> dict[str, tuple[float, float]]:
    """Time each way, `rounds` rounds of `calls` calls, the ways alternated within each round
    (after `warm` calls of each: connections, made statements, caches): the median over
    rounds of the CPU (process time) and of the wall time per call, in seconds, by way."""
    for way in ways.values():
        for _ in range(warm):
            way()
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, way in ways.items():
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(calls):
                way()
            figures[name].append(
                ((time.process_time() - cpu) / calls, (time.perf_counter() - wall) / calls)
            )
    return {
        name: (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows))
        for name, rows in figures.items()
    }

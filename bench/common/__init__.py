"""What more than one benchmark sets up (a package: `make bench` runs bench/*.py)."""

from __future__ import annotations

import contextlib
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from django.core.management import call_command

from chat.models import AIThread
from ontology import services
from ontology.models import Group, Thing, User
from ontology.scoping import group_scope


def one_thread(name: str, plan: str = Group.Plan.FREE) -> tuple[Group, User, AIThread]:
    """Migrate, then one group named `name` (on `plan`), its owner, an agent and one thread
    of theirs."""
    call_command("migrate", verbosity=0)
    slug = f"{name.lower().replace(' ', '-')}-{time.time_ns()}"
    user = User.objects.create_user(username=f"{slug}@bench")
    group = services.group_create(name=name, slug=slug, actor=None, owner=user, plan=plan)
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


@contextlib.contextmanager
def simulator_process() -> Iterator[str]:
    """The simulator in its own process, as a remote provider would be: no shared GIL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", "simulate_provider", "--port", str(port)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the simulator did not start")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)

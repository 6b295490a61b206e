"""A burst of sockets through the whole WebSocket stack, in one process: Parley's against
the floor's.

    python -m config.devservers exec -- .venv/bin/python bench/socket_stack.py [--sockets 200]
        [--rounds 5]

Each socket opens as a browser's does (Origin, Host and the session cookie) on a thread of
its own, through the ASGI application a daphne process serves (config.asgi: the origin
check, the session, the consumer's read of who and where, the accept, the thread's group,
the look for a streaming run), and the same burst through the floor's (bench/floor/app.py:
channels' origin check and a consumer that accepts). Both are driven by channels'
WebsocketCommunicator in this process's event loop, so daphne's own work (the HTTP
upgrade, the frames) is left out of both: what differs is the stack's own.

Per round, alternated: the CPU (process time, the database threads' included) per socket
from the burst's start until every socket is accepted, and until each has settled (its
connect has returned: group joined, streaming run looked for). Then, once, the memory each
open socket keeps: tracemalloc's count of what a burst allocated and still holds once it
has settled, per socket (the test harness's own queues included, in both).

Setup: migrate, one group, its owner with one session per socket and a thread per socket.
Run it alone on a quiet machine (the load average is printed before and after).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
import traceback
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1")

import django  # noqa: E402

django.setup()

from channels.testing import WebsocketCommunicator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.test import Client  # noqa: E402

from bench.common import one_thread  # noqa: E402
from chat.models import AIThread  # noqa: E402
from ontology.scoping import group_scope  # noqa: E402

HOST = b"127.0.0.1"


def setup(sockets: int) -> list[tuple[int, str]]:
    """(thread id, session key) for each socket: one owner, a session and a thread each."""
    group, user, first = one_thread("Socket stack bench")
    with group_scope(group):
        threads = [first] + [
            AIThread.objects.create(group=group, agent=first.agent, user=user)
            for _ in range(sockets - 1)
        ]
    keys = []
    for _ in range(sockets):
        client = Client()
        client.force_login(user)
        keys.append(client.cookies[settings.SESSION_COOKIE_NAME].value)
    return [(thread.pk, key) for thread, key in zip(threads, keys, strict=True)]


class Settled:
    """Tells when this many Parley consumers have returned from connect (the floor's
    returns at its accept, so a floor's socket is settled once accepted)."""

    def __init__(self) -> None:
        self.count = 0
        self._waiting: tuple[int, asyncio.Event] | None = None
        from chat.consumers import ThreadConsumer

        original = ThreadConsumer.connect

        async def connect(consumer) -> None:
            try:
                await original(consumer)
            finally:
                self.count += 1
                if self._waiting and self.count >= self._waiting[0]:
                    self._waiting[1].set()

        ThreadConsumer.connect = connect

    async def until(self, count: int) -> None:
        if self.count < count:
            self._waiting = (count, asyncio.Event())
            await self._waiting[1].wait()
            self._waiting = None


async def floor_settled(count: int) -> None:
    """The floor's sockets are settled once accepted."""


async def burst(
    app, targets: list[tuple[int, str]], settle: Callable[[int], Awaitable[None]], base: int
) -> tuple[tuple[float, float], tuple[float, float], list[WebsocketCommunicator]]:
    """Open every socket at once: (CPU per socket, the burst's wall time) until all are
    accepted, and until all have settled (`settle(base + len(targets))` returns); the open
    communicators."""
    sockets = [
        WebsocketCommunicator(
            app,
            f"/ws/threads/{thread_id}/",
            headers=[
                (b"origin", b"http://" + HOST),
                (b"host", HOST),
                (b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode()),
            ],
        )
        for thread_id, key in targets
    ]
    start, wall = time.process_time(), time.perf_counter()
    opened = await asyncio.gather(*(socket.connect(timeout=60) for socket in sockets))
    accepted = (time.process_time() - start) / len(sockets), time.perf_counter() - wall
    assert all(ok for ok, _ in opened), opened[:3]
    await settle(base + len(sockets))
    done = (time.process_time() - start) / len(sockets), time.perf_counter() - wall
    return accepted, done, sockets


async def close(sockets: list[WebsocketCommunicator]) -> None:
    await asyncio.gather(*(socket.disconnect() for socket in sockets))


async def held_per_socket(app, targets, settle, base) -> float:
    """Bytes a burst allocated and still holds once every socket has settled, per socket."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    *_, sockets = await burst(app, targets, settle, base())
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    await close(sockets)
    return held / len(targets)


async def run(args: argparse.Namespace, targets: list[tuple[int, str]]) -> None:
    from bench.floor.app import application as floor
    from config.asgi import application as parley

    settled = Settled()
    apps = {  # name: (application, settle, how many sockets settled so far)
        "Parley": (parley, settled.until, lambda: settled.count),
        "floor": (floor, floor_settled, lambda: 0),
    }
    for app, settle, base in apps.values():  # warm: connections, made statements, caches
        *_, sockets = await burst(app, targets[:20], settle, base())
        await close(sockets)
    figures: dict[str, list[tuple[tuple[float, float], tuple[float, float]]]] = {
        name: [] for name in apps
    }
    for _ in range(args.rounds):
        for name, (app, settle, base) in apps.items():
            accepted, done, sockets = await burst(app, targets, settle, base())
            figures[name].append((accepted, done))
            await close(sockets)
    memory = {
        name: await held_per_socket(app, targets, settle, base)
        for name, (app, settle, base) in apps.items()
    }
    print(f"{args.rounds} rounds of {args.sockets} sockets opening at once; medians:")
    cpu = {}
    for name, rows in figures.items():
        accepted = [statistics.median(row[0][i] for row in rows) * 1000 for i in (0, 1)]
        done = [statistics.median(row[1][i] for row in rows) * 1000 for i in (0, 1)]
        cpu[name] = done[0]
        print(
            f"  {name:7s} CPU per socket to accepted {accepted[0]:6.3f} ms, to settled "
            f"{done[0]:6.3f} ms; the burst's wall time to accepted {accepted[1]:7.1f} ms, "
            f"to settled {done[1]:7.1f} ms; memory held per open socket "
            f"{memory[name] / 1024:5.1f} KiB"
        )
    print(
        f"  Parley / floor: CPU to settled {cpu['Parley'] / cpu['floor']:.2f}x, "
        f"memory +{(memory['Parley'] - memory['floor']) / 1024:.1f} KiB per socket"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}")
    loop = asyncio.new_event_loop()
    code = 0
    try:
        loop.run_until_complete(run(args, setup(args.sockets)))
    except Exception:
        traceback.print_exc()
        code = 1
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")
    sys.stdout.flush()
    sys.stderr.flush()
    # leave without closing the loop: the process's runs and listeners would wait out their
    # sweeps to close
    os._exit(code)


if __name__ == "__main__":
    main()

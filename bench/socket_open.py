"""A socket's open, alone: the CPU of reading who opens it and what it may read.

    python -m config.devservers exec -- .venv/bin/python bench/socket_open.py [--opens 1000]
        [--rounds 5] [--together 100]

A browser's socket opens with one hand-written statement (chat.socket_open: the session's
user, the thread, its group, the reader's role, any answer streaming). The baseline,
measured in the same run on the same rows, is the ORM's way, which a socket still takes
when its session was signed in by another configured backend: channels' `get_user`
(the user's query) then `chat.selectors.thread_for_member` (the thread's, compiled by
Django each time). Both read the session from the cache (Redis) as a socket does.

Sockets of a process opening together share a trip to a database thread
(chat.consumers._opening). Two more ways, per open, with --together sockets a trip, each
with a session of its own: one by one on the trip (each its own cache read and
statement, as the trip ran them before), and together (one cache read for the sessions,
one statement for all: chat.consumers._who_and_where_together).

Setup: migrate, one group, its owner, an agent and one thread. Each round times --opens
opens of each way, alternated; the report gives the median over rounds of the CPU
(process time) and the wall time per open, and their ratios. Run it alone on a quiet
machine (the load average is printed before and after).
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import import_module
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from channels.auth import UserLazyObject, get_user  # noqa: E402
from django.conf import settings  # noqa: E402
from django.test import Client  # noqa: E402

from bench.common import alternated, one_thread  # noqa: E402
from chat import selectors  # noqa: E402
from chat.consumers import _who_and_where, _who_and_where_together  # noqa: E402
from chat.runs import streaming_run_column  # noqa: E402


def setup(sessions: int) -> tuple[list[str], int]:
    """`sessions` session keys of a signed-in owner (a client each) and a thread of theirs."""
    _, user, thread = one_thread("Open bench")
    keys = []
    for _ in range(sessions):
        client = Client()
        client.force_login(user)
        keys.append(client.cookies[settings.SESSION_COOKIE_NAME].value)
    return keys, thread.pk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--opens", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--together", type=int, default=100, help="sockets sharing a trip")
    args = parser.parse_args()
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}")
    session_keys, thread_id = setup(args.together)
    session_key = session_keys[0]
    store = import_module(settings.SESSION_ENGINE).SessionStore

    def scope(key: str = session_key) -> dict:
        return {"session": store(key), "user": UserLazyObject(), "cookies": {}}

    def orm() -> None:
        user = get_user.func(scope())
        found = selectors.thread_for_member(
            user=user, thread_id=thread_id, streaming_run_id=streaming_run_column()
        )
        assert found is not None

    def one_statement() -> None:
        assert _who_and_where(scope(), thread_id)[1] is not None

    def one_by_one_on_a_trip() -> None:
        for key in session_keys:
            assert _who_and_where(scope(key), thread_id)[1] is not None

    def together() -> None:
        found = _who_and_where_together([(scope(key), thread_id) for key in session_keys])
        assert all(access is not None for _, access, _ in found)

    ways = {
        "ORM (get_user + thread_for_member)": orm,
        "one statement (chat.socket_open)": one_statement,
    }
    timed = alternated(ways, rounds=args.rounds, calls=args.opens)
    trips = {
        f"{args.together} on a trip, one by one": one_by_one_on_a_trip,
        f"{args.together} on a trip, together": together,
    }
    trip_calls = max(1, args.opens // args.together)
    for name, (cpu, wall) in alternated(
        trips, rounds=args.rounds, calls=trip_calls, warm=2
    ).items():
        timed[name] = (cpu / args.together, wall / args.together)
    print(f"{args.rounds} rounds of {args.opens} opens each way; medians per open:")
    for name, (cpu, wall) in timed.items():
        print(f"  {name:40s} CPU {cpu * 1000:6.3f} ms   wall {wall * 1000:6.3f} ms")
    cpu = {name: figures[0] for name, figures in timed.items()}
    wall = {name: figures[1] for name, figures in timed.items()}
    orm, one, by_one, joint = timed
    print(f"  CPU ratio, one statement / ORM: {cpu[one] / cpu[orm]:.2f}")
    print(
        f"  on a trip, together / one by one: CPU {cpu[joint] / cpu[by_one]:.2f}, "
        f"wall {wall[joint] / wall[by_one]:.2f}"
    )
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

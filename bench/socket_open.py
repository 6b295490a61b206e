"""A socket's open, alone: the CPU of reading who opens it and what it may read.

    python -m config.devservers exec -- .venv/bin/python bench/socket_open.py [--opens 1000]
        [--rounds 5]

A browser's socket opens with one hand-written statement (chat.socket_open: the session's
user, the thread, its group, the reader's role, any answer streaming). The baseline,
measured in the same run on the same rows, is the ORM's way, which a socket still takes
when its session was signed in by another configured backend: channels' `get_user`
(the user's query) then `chat.selectors.thread_for_member` (the thread's, compiled by
Django each time). Both read the session from the cache (Redis) as a socket does.

Setup: migrate, one group, its owner, an agent and one thread. Each round times --opens
opens of each way, alternated; the report gives the median over rounds of the CPU
(process time) and the wall time per open, and their ratio. Run it alone on a quiet
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
from chat.consumers import _who_and_where  # noqa: E402
from chat.runs import streaming_run_column  # noqa: E402


def setup() -> tuple[str, int]:
    """A signed-in owner's session key and a thread of theirs."""
    _, user, thread = one_thread("Open bench")
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value, thread.pk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--opens", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}")
    session_key, thread_id = setup()
    store = import_module(settings.SESSION_ENGINE).SessionStore

    def scope() -> dict:
        return {"session": store(session_key), "user": UserLazyObject(), "cookies": {}}

    def orm() -> None:
        user = get_user.func(scope())
        found = selectors.thread_for_member(
            user=user, thread_id=thread_id, streaming_run_id=streaming_run_column()
        )
        assert found is not None

    def one_statement() -> None:
        assert _who_and_where(scope(), thread_id)[1] is not None

    ways = {
        "ORM (get_user + thread_for_member)": orm,
        "one statement (chat.socket_open)": one_statement,
    }
    timed = alternated(ways, rounds=args.rounds, calls=args.opens)
    print(f"{args.rounds} rounds of {args.opens} opens each way; medians per open:")
    medians = {}
    for name, (cpu, wall) in timed.items():
        medians[name] = cpu
        print(f"  {name:40s} CPU {cpu * 1000:6.3f} ms   wall {wall * 1000:6.3f} ms")
    orm_cpu, new_cpu = medians.values()
    print(f"  CPU ratio, one statement / ORM: {new_cpu / orm_cpu:.2f}")
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

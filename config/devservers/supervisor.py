"""The process supervisor of `make run`: restarts what dies, stops everything on a signal."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from config.devservers.common import ROOT, DevServerError, say

RESTART_DELAYS = (1.0, 2.0, 4.0, 8.0)  # seconds before each restart of a process that keeps dying
STEADY_AFTER = 30.0  # seconds a process must run for its exit to count as more than a crash loop
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"exited with code {code} ({signal.Signals(-code).name})"
    return f"exited with code {code}"


class Server(Protocol):
    """A server the runner started itself (the embedded Valkey): restarted in place, on the
    same port, so the processes that were given its URL find it again."""

    def alive(self) -> bool: ...

    def restart(self) -> None: ...


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
        servers: dict[str, Server] | None = None,
    ) -> None:
        self.env = env
        self.servers = servers or {}
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
        """Notice the processes that exited and start again those whose pause is over; a
        dead server is started again at once (the processes need it)."""
        for name, server in self.servers.items():
            if not server.alive():
                say(f"{name} died; restarting it on the same port.")
                server.restart()
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
    banner: Callable[[], None],
    ready: Callable[[], bool] = lambda: True,
    pass_fds: dict[str, tuple[int, ...]] | None = None,
    servers: dict[str, Server] | None = None,
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
    supervisor = Supervisor(commands, env=env, pass_fds=pass_fds, servers=servers)
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

"""`make run`'s supervisor, driven with small stand-in processes instead of daphne and Celery.

Each stand-in reports its name and pid on the test's `announcements` socket when it starts,
so the tests wait for a (re)start by accepting a connection, never by sleeping.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from config.devservers import DevServerError, Supervisor, free_port

ROOT = Path(__file__).resolve().parents[2]

STAND_IN = textwrap.dedent("""
    import os, signal, socket, sys
    name, announcements, code = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with socket.create_connection(("127.0.0.1", announcements)) as report:
        report.sendall(f"{name} {os.getpid()}".encode())
    if code != "serve":
        sys.exit(int(code))
    if len(sys.argv) > 4:
        web = socket.socket(fileno=int(sys.argv[4]))
        while True:
            client, _ = web.accept()
            with client:
                client.sendall(str(os.getpid()).encode())
    signal.pause()
""")


def stand_in(name: str, announcements: socket.socket, code: str = "serve", *fds: int) -> list[str]:
    port = str(announcements.getsockname()[1])
    return [sys.executable, "-c", STAND_IN, name, port, code, *map(str, fds)]


def next_start(announcements: socket.socket) -> tuple[str, int]:
    client, _ = announcements.accept()
    with client:
        client.settimeout(30)
        name, pid = client.recv(100).decode().split()
    return name, int(pid)


def pid_served_on(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        return int(client.recv(100))


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def announcements():
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(30)
        yield server


RUNNER = textwrap.dedent("""
    import json, os, sys
    from config.devservers import listening_socket, supervise
    stand_in, port, announcements = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    web = listening_socket("127.0.0.1", port)
    fd = str(web.fileno())
    commands = {
        "web": [sys.executable, "-c", stand_in, "web", announcements, "serve", fd],
        "worker": [sys.executable, "-c", stand_in, "worker", announcements, "serve"],
    }
    with web:
        sys.exit(supervise(
            commands, env=dict(os.environ), banner=lambda: print("banner", flush=True),
            pass_fds={"web": (web.fileno(),)},
        ))
""")


def test_make_run_restarts_a_killed_process_and_keeps_the_others_serving(announcements):
    """Killing one daphne under `make run` restarts that one, on the same listening socket;
    the worker keeps its process; SIGTERM still stops everything."""
    port = free_port()
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, STAND_IN, str(port), str(announcements.getsockname()[1])],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        started = dict(next_start(announcements) for _ in range(2))
        assert pid_served_on(port) == started["web"]

        os.kill(started["web"], signal.SIGKILL)

        assert next_start(announcements)[0] == "web"  # restarted, not stopped with the rest
        restarted = pid_served_on(port)
        assert restarted != started["web"]
        assert is_running(started["worker"])

        runner.send_signal(signal.SIGTERM)
        output, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.terminate()
            runner.communicate(timeout=60)
    assert runner.returncode == 0, output
    assert "web exited with code -9 (SIGKILL)" in output
    assert "restart" in output.split("web exited with code -9")[1].splitlines()[0]
    assert not is_running(restarted)
    assert not is_running(started["worker"])
    announcements.setblocking(False)
    with pytest.raises(BlockingIOError):
        announcements.accept()  # nothing started more than once but the killed one


def test_a_process_that_keeps_exiting_at_once_stops_the_platform(announcements, capsys):
    supervisor = Supervisor(
        {"worker": stand_in("worker", announcements), "beat": stand_in("beat", announcements, "3")},
        env=dict(os.environ),
        delays=(0, 0),
    )
    supervisor.start()
    try:
        started = dict(next_start(announcements) for _ in range(2))
        with pytest.raises(DevServerError, match=r"beat died 3 times in a row .*code 3"):
            for _ in range(3):
                supervisor.children["beat"].process.wait(timeout=30)
                supervisor.poll()
                assert next_start(announcements)[0] == "beat"
        assert supervisor.children["worker"].process.pid == started["worker"]
        assert capsys.readouterr().out.count("beat exited with code 3") == 2  # two restarts
    finally:
        supervisor.stop()
    assert supervisor.children["worker"].process.poll() is not None


def test_a_process_that_exits_at_once_is_restarted_after_a_pause(announcements, capsys):
    supervisor = Supervisor(
        {"beat": stand_in("beat", announcements, "1")}, env=dict(os.environ), delays=(60,)
    )
    supervisor.start()
    try:
        first = next_start(announcements)[1]
        supervisor.children["beat"].process.wait(timeout=30)
        supervisor.poll()
        assert supervisor.children["beat"].process.pid == first  # not started again yet
        assert "beat exited with code 1; restarting it in 60 s" in capsys.readouterr().out
    finally:
        supervisor.stop()


BATCH_ACCEPTER = textwrap.dedent("""
    import os, select, socket, sys
    web = socket.socket(fileno=int(sys.argv[1]))
    web.setblocking(False)
    print("ready", flush=True)
    while True:  # as twisted accepts: every connection waiting, at each wake-up
        select.select([web], [], [])
        while True:
            try:
                client, _ = web.accept()
            except BlockingIOError:
                break
            with client:
                client.setblocking(True)
                client.sendall(str(os.getpid()).encode())
""")


def test_each_web_process_gets_its_share_of_a_burst_of_connections():
    """`make run`'s daphne processes each accept from a listening socket of their own on the
    one port, and the kernel spreads new connections over them: a burst of 200 opened at
    once is not taken by whichever process wakes first (twisted accepts every connection
    waiting at each wake-up, up to a hundred)."""
    from config.devservers import listening_sockets

    port = free_port()
    webs = listening_sockets("127.0.0.1", port, 2)
    assert len({web.fileno() for web in webs}) == 2
    accepters = []
    try:
        for web in webs:
            accepter = subprocess.Popen(
                [sys.executable, "-c", BATCH_ACCEPTER, str(web.fileno())],
                stdout=subprocess.PIPE,
                text=True,
                pass_fds=(web.fileno(),),
            )
            accepters.append(accepter)
            assert accepter.stdout.readline().strip() == "ready"
        burst = [socket.create_connection(("127.0.0.1", port), 10) for _ in range(200)]
        served_by = []
        for client in burst:
            with client:
                served_by.append(int(client.recv(16)))
    finally:
        for accepter in accepters:
            accepter.kill()
            accepter.wait()
        for web in webs:
            web.close()
    shares = {pid: served_by.count(pid) for pid in set(served_by)}
    assert set(shares) == {accepter.pid for accepter in accepters}
    assert min(shares.values()) >= 60, shares  # an even split is 100 each


def test_make_run_starts_each_daphne_on_a_listening_socket_of_its_own():
    from config.devservers import listening_sockets
    from config.devservers.platform import platform_commands

    webs = listening_sockets("127.0.0.1", free_port(), 2)
    fds = {web.fileno() for web in webs}
    try:
        commands, inherited = platform_commands(webs, simulator_port=None)
    finally:
        for web in webs:
            web.close()
    assert set(inherited) == {"daphne-1", "daphne-2"}
    assert {fd for (fd,) in inherited.values()} == fds
    for name, (fd,) in inherited.items():
        command = commands[name]
        assert command[command.index("--fd") + 1] == str(fd)
    assert {"celery", "beat"} <= set(commands)

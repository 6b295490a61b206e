"""Idle sockets: authenticated WebSockets opened before the streams and silent while they run.

The issue's target is "500 idle sockets plus 200 streaming in one run". Each idle socket
opens /ws/threads/<id>/ on a thread of its own (so it passes the session check and the
access check and joins its thread's group, but no run's events reach it), then sends
nothing. They are held by a worker process with its own event loop, so holding them costs
the streaming clients' loop nothing. Each socket awaits `receive()` for the whole phase:
that answers daphne's pings (aiohttp's autoping) and sees a close the moment it comes.

They open in batches (`--idle-batch` at once, the next batch when the last is open), so
their opening is not a thundering herd; their open times are reported apart from the
streaming clients'. daphne's RSS is read before they open and once they are open and have
settled, per process and summed: the difference over their number is its cost per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp
import redis
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connections

from bench.streamslib.accounting import cpu_seconds, rss_total
from chat.fanout import thread_group

OPEN_TIMEOUT = 60  # seconds for one socket's handshake
SETTLE_SECONDS = 1.0  # after the last idle socket opens, before daphne's RSS is read again
REPLY_TIMEOUT = 600  # seconds to wait for the worker's answer (opening 1,000s of sockets)
CLOSED_TYPES = (
    aiohttp.WSMsgType.CLOSE,
    aiohttp.WSMsgType.CLOSING,
    aiohttp.WSMsgType.CLOSED,
    aiohttp.WSMsgType.ERROR,
)


@dataclass
class IdleResult:
    sockets: int
    batch: int
    opened: list[float] = field(default_factory=list)  # ms per successful open
    open_errors: list[str] = field(default_factory=list)
    open_wall: float = 0.0  # seconds to open them all
    rss_before: int = 0  # KiB, daphne's processes summed, before the first opens
    rss_after: int = 0  # KiB, once all are open and SETTLE_SECONDS have passed
    joined: int | None = None  # members of the idle threads' groups (Parley only)
    closed: list[str] = field(default_factory=list)  # each idle socket found closed
    frames: int = 0  # frames an idle socket received: none is expected
    holder_cpu: float = 0.0  # the worker's CPU seconds while the streams ran

    @property
    def rss_per_socket(self) -> float:
        """KiB of daphne RSS per idle socket (summed over daphne's processes)."""
        return (self.rss_after - self.rss_before) / max(1, self.sockets)

    @property
    def not_joined(self) -> int:
        return 0 if self.joined is None else max(0, len(self.opened) - self.joined)

    @property
    def open_at_end(self) -> int:
        return len(self.opened) - len(self.closed)

    @property
    def failures(self) -> int:
        """Idle sockets that did not open, did not join their group, or were closed (one
        refused by the access check is both of the last two: counted once)."""
        return len(self.open_errors) + max(self.not_joined, len(self.closed))


class IdleSockets:
    """The worker holding the idle sockets; `check()` asks which are still open."""

    def __init__(self, result: IdleResult, connection, process: multiprocessing.Process) -> None:
        self.result = result
        self.connection = connection
        self.process = process
        self.cpu_start = 0.0

    def streams_start(self) -> None:
        self.cpu_start = cpu_seconds((self.process.pid,))

    def check(self) -> IdleResult:
        """Which idle sockets are still open, after the streams: counted in the result."""
        self.result.holder_cpu = cpu_seconds((self.process.pid,)) - self.cpu_start
        self.connection.send("check")
        status = receive(self.connection)
        self.result.closed = status["closed"]
        self.result.frames = status["frames"]
        return self.result


@contextlib.contextmanager
def idle_sockets(
    *,
    url: str,
    origin: str,
    targets: list[tuple[int, str]],
    batch: int,
    daphne_pids: tuple[int, ...],
    parley: bool,
) -> Iterator[IdleSockets | None]:
    """Open `targets` (thread id, session cookie) as idle sockets, in batches; hold them
    until the block ends. None when there are no targets."""
    if not targets:
        yield None
        return
    result = IdleResult(sockets=len(targets), batch=batch)
    result.rss_before = rss_total(daphne_pids)
    ours, theirs = multiprocessing.get_context("fork").Pipe()
    connections.close_all()  # the worker is forked: it must not share the bench's connections
    process = multiprocessing.get_context("fork").Process(
        target=hold, args=(theirs, url, origin, targets, batch), daemon=True
    )
    process.start()
    try:
        opened = receive(ours)
        result.opened, result.open_errors, result.open_wall = (
            opened["opened"],
            opened["errors"],
            opened["wall"],
        )
        time.sleep(SETTLE_SECONDS)  # the last handshakes' work (access check, group join)
        result.rss_after = rss_total(daphne_pids)
        if parley:
            result.joined = group_members([int(thread) for thread, _ in targets])
        yield IdleSockets(result, ours, process)
    finally:
        with contextlib.suppress(OSError, BrokenPipeError):
            ours.send("close")
        process.join(timeout=60)
        if process.is_alive():
            process.kill()
            process.join()


def receive(connection) -> dict:
    if not connection.poll(REPLY_TIMEOUT):
        raise RuntimeError("the idle sockets' worker did not answer")
    return connection.recv()


def group_members(threads: list[int]) -> int:
    """Channels in the idle threads' groups, read from channels_redis' group sets (as
    chat.fanout does): each idle socket that passed the access check has joined one."""
    layer = get_channel_layer()
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        pipe = client.pipeline(transaction=False)
        for thread in threads:
            pipe.zcard(layer._group_key(thread_group(thread)))
        return sum(pipe.execute())
    finally:
        client.close()


def hold(connection, url: str, origin: str, targets: list[tuple[int, str]], batch: int) -> None:
    """The worker: open, report, hold until asked, report which closed, close."""
    asyncio.run(hold_sockets(connection, url, origin, targets, batch))


async def hold_sockets(
    connection, url: str, origin: str, targets: list[tuple[int, str]], batch: int
) -> None:
    loop = asyncio.get_running_loop()
    state = {"closed": [], "frames": 0}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=OPEN_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        sockets: list[aiohttp.ClientWebSocketResponse] = []
        opened, errors = [], []
        started = time.perf_counter()
        for first in range(0, len(targets), batch):
            part = targets[first : first + batch]
            results = await asyncio.gather(
                *(open_one(http, url, origin, thread, cookie) for thread, cookie in part)
            )
            for ws, seconds, error in results:
                if ws is None:
                    errors.append(error)
                else:
                    sockets.append(ws)
                    opened.append(seconds * 1000)
        wall = time.perf_counter() - started
        watchers = [
            asyncio.create_task(watch(ws, index, started, state))
            for index, ws in enumerate(sockets)
        ]
        connection.send({"opened": opened, "errors": errors, "wall": wall})
        while await loop.run_in_executor(None, connection.recv) == "check":
            connection.send({"closed": list(state["closed"]), "frames": state["frames"]})
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await asyncio.gather(
            *(asyncio.wait_for(ws.close(), 10) for ws in sockets), return_exceptions=True
        )


async def open_one(
    http: aiohttp.ClientSession, url: str, origin: str, thread: str, cookie: str
) -> tuple[aiohttp.ClientWebSocketResponse | None, float, str]:
    headers = {"Origin": origin, "Cookie": cookie}
    opening = time.perf_counter()
    try:
        async with asyncio.timeout(OPEN_TIMEOUT):
            ws = await http.ws_connect(f"{url}/ws/threads/{thread}/", headers=headers)
    except Exception as error:  # counted as a failure
        return None, 0.0, f"idle socket to thread {thread}: {error!r}"
    return ws, time.perf_counter() - opening, ""


async def watch(ws: aiohttp.ClientWebSocketResponse, index: int, since: float, state: dict) -> None:
    """Read the socket (pings are answered inside receive()) until it closes."""
    while True:
        message = await ws.receive()
        if message.type in CLOSED_TYPES:
            state["closed"].append(
                f"idle socket {index}: {message.type.name}, code {ws.close_code}, "
                f"{time.perf_counter() - since:.1f} s after the first opened"
            )
            return
        state["frames"] += 1

"""Many concurrent chat streams through daphne: added time to first token, gaps, lost deltas.

    make bench                    (all benchmarks)
    python -m config.devservers exec -- .venv/bin/python bench/streams.py [--clients 200]
        [--words 300] [--tps 50] [--ramp 3] [--procs 1] [--web-processes N] [--no-slow-client]

Setup: migrate, one enterprise group with one user per client (each with its own
thread and a session made with Django's session engine), the provider simulator
and daphne each in their own process, as `make run` starts them (daphne gets
raised message rate limits and explicit --ping-interval/--ping-timeout).

Phase 1, baseline: the same number of concurrent streams straight to the
simulator over raw HTTP (aiohttp, SSE parsed by hand), same model and pacing,
same start ramp, from the same client loop(s). Its time to first token and
inter-token gaps are "the simulator's own", network and client cost included.

Phase 2, platform: each client opens /ws/threads/<id>/ (sessionid cookie +
Origin); once every socket is open (their opening times are reported apart) and
a second has passed, each sends `message.send` at its slot of the ramp and reads
frames until `run.completed`. Added TTFT = platform quantile - baseline quantile (p50, p99);
so is the inter-delta gap. Each client checks its run's `seq` are 1..n with no
gap or repeat, and after the phase the text it assembled is compared with the
assistant message stored in the database. The ramp spreads the sends over
--ramp seconds (the answer lasts longer, so all streams overlap); --ramp 0 is
a thundering herd. daphne's RSS is sampled from /proc (and VmHWM read), its
CPU is utime+stime from /proc/<pid>/stat, beside the simulator's, the bench's own and
PostgreSQL's (its server and every backend, ended ones included); the client loop's
own lag is measured too, to tell a slow platform from a saturated bench.

Phase 3, slow client (skip with --no-slow-client): one client asks an agent
whose answer is long and unpaced, reads a few deltas, then stops reading its
socket (small SO_RCVBUF, transport paused) while every other client runs a
second turn. It reports daphne's RSS growth, the bytes stuck in the kernel
queues, and when daphne drops the connection (the ping timeout); then it
reconnects, sends `stream.resume {after_seq}` and checks that what it had plus
what the resume sent is exactly the stored answer.

Exit code 1 when any delta was lost or duplicated, or a text does not match.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import aiohttp  # noqa: E402
import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402

from agents.tokens import count_tokens  # noqa: E402
from chat import services as chat_services  # noqa: E402
from chat.models import Message  # noqa: E402
from config.devservers import daphne_commands, listening_socket, web_processes  # noqa: E402
from ontology import services  # noqa: E402
from ontology.models import Group, Thing, User  # noqa: E402
from ontology.scoping import group_scope  # noqa: E402

QUESTION = "Summarise our travel policy for the new team."
SYSTEM = "You are a helpful assistant."
SLOW_DELTAS_READ = 5  # the slow client reads this many deltas, then stops reading
PLATFORM_TIMEOUT = 180
SETTLE_SECONDS = 1.0  # after the last socket opens, before the first send
HZ = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


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
    """Every process listening on the shared socket (its log line), and one answering."""
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
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, process, "the simulator")
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


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
    """daphne as `make run` starts it (processes sharing one socket), with production
    settings and raised rate limits."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PARLEY_SIMULATOR_URL": simulator_url,
        **{f"PARLEY_RATE_{plan}_{scope}": "1000000/m"
           for plan in ("FREE", "TEAM", "BUSINESS", "ENTERPRISE") for scope in ("USER", "GROUP")},
        **(extra_env or {}),
    }  # fmt: skip
    options = ("--ping-interval", str(ping_interval), "--ping-timeout", str(ping_timeout))
    started: list[subprocess.Popen] = []
    with listening_socket("127.0.0.1", port) as sock, log.open("w") as out:
        for command in daphne_commands(sock, processes, *options, app=app).values():
            process = subprocess.Popen(  # noqa: S603
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                pass_fds=(sock.fileno(),),
            )  # fmt: skip
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
def profiler(pid: int, output: str | None) -> Iterator[None]:
    """py-spy on daphne for one phase (pip install py-spy; a dev tool, not a dependency)."""
    if not output:
        yield
        return
    command = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
               "--rate", "200", "--output", output, "--nonblocking"]  # fmt: skip
    if output.endswith(".txt"):
        command += ["--format", "raw"]
    command += os.environ.get("PARLEY_PY_SPY_ARGS", "").split()  # e.g. "--gil --threads"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


# --- /proc ---------------------------------------------------------------------------


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pids: tuple[int, ...]) -> float:
    return sum(sum(cpu_split(pid)) for pid in pids)


def system_seconds(pids: tuple[int, ...]) -> float:
    return sum(cpu_split(pid)[1] for pid in pids)


def rss_total(pids: tuple[int, ...], key: str = "VmRSS") -> int:
    return sum(rss_kib(pid, key) for pid in pids)


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU seconds (utime, stime: fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / HZ, int(fields[12]) / HZ


def postmaster_pid(port: int | str) -> int | None:
    """The PostgreSQL server listening on `port` (its command line names the port)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                args = cmdline.read().split(b"\0")
                if args[0].endswith(b"/postgres") and f"port={port}".encode() in args:
                    return int(entry)
    return None


def server_cpu_seconds(root: int) -> float:
    """CPU of a server and all its processes, those that ended included (the root's cutime and
    cstime hold its reaped children's): PostgreSQL starts and ends a process per connection."""
    with open(f"/proc/{root}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    total = sum(int(value) for value in fields[11:15]) / HZ
    with open(f"/proc/{root}/task/{root}/children") as children:
        for child in children.read().split():
            with contextlib.suppress(OSError):
                total += sum(cpu_split(int(child)))
    return total


def machine_busy() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def loadavg() -> str:
    with open("/proc/loadavg") as load:
        return " ".join(load.read().split()[:3])


class Sampler:
    """Samples daphne's RSS every 50 ms in a thread; a phase reads its peak and CPU."""

    def __init__(self, pids: dict[str, tuple[int, ...]], postgres: int | None = None) -> None:
        self.pids = pids
        self.postgres = postgres
        self.peak = 0
        self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(OSError):
                self.last = rss_total(self.pids["daphne"])
                self.peak = max(self.peak, self.last)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def phase(self) -> Phase:
        self.peak = rss_total(self.pids["daphne"])
        return Phase(self)


class Phase:
    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.rss_start = sampler.peak
        self.cpu_start = {name: cpu_seconds(pid) for name, pid in sampler.pids.items()}
        self.postgres_start = server_cpu_seconds(sampler.postgres) if sampler.postgres else 0.0
        self.daphne_sys_start = system_seconds(sampler.pids["daphne"])
        self.busy_start = machine_busy()
        self.started = time.perf_counter()

    def end(self) -> dict:
        wall = time.perf_counter() - self.started
        cpu = {
            name: cpu_seconds(pid) - self.cpu_start[name] for name, pid in self.sampler.pids.items()
        }
        if self.sampler.postgres:
            cpu["postgres"] = server_cpu_seconds(self.sampler.postgres) - self.postgres_start
        busy, total = machine_busy()
        machine = (busy - self.busy_start[0]) / max(1, total - self.busy_start[1])
        return {
            "wall": wall, "cpu": cpu, "machine": machine, "rss_start": self.rss_start,
            "daphne_sys": system_seconds(self.sampler.pids["daphne"]) - self.daphne_sys_start,
            "rss_peak": self.sampler.peak, "rss_end": rss_total(self.sampler.pids["daphne"]),
        }  # fmt: skip


# --- setup (Django, in the bench process) ----------------------------------------------


@dataclass
class Tenant:
    group: Group
    threads: list[int]
    cookies: list[str]
    slow_thread: int
    slow_cookie: str
    warmup_threads: list[int]


def agent_model(words: int, tps: float) -> str:
    return f"sim-gpt@text;words={words};tps={tps:g};ttft_ms=0"


def session_cookie(user: User) -> str:
    """A logged-in session, as django.contrib.auth.login would store it."""
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def setup_tenant(clients: int, *, words: int, tps: float, slow_words: int, warmup: int) -> Tenant:
    stamp = f"{int(time.time())}-{os.getpid()}"
    owner = User.objects.create_user(f"owner-{stamp}@bench.example", f"owner-{stamp}@bench.example")
    group = services.group_create(
        name=f"Streams bench {stamp}", actor=None, owner=owner, plan=Group.Plan.ENTERPRISE
    )
    agent = services.thing_create(
        group=group, type=Thing.Type.AGENT, name="Streaming agent", actor=None,
        properties={"provider": "simulator", "model": agent_model(words, tps),
                    "systemPrompt": SYSTEM},
    )  # fmt: skip
    slow_agent = services.thing_create(
        group=group, type=Thing.Type.AGENT, name="Long unpaced agent", actor=None,
        properties={"provider": "simulator", "model": agent_model(slow_words, 0),
                    "systemPrompt": SYSTEM, "maxTokens": 16_384},
    )  # fmt: skip
    users = User.objects.bulk_create(
        [User(username=f"c{i}-{stamp}@bench.example", email=f"c{i}-{stamp}@bench.example",
              password=make_password(None)) for i in range(clients + 1)]
    )  # fmt: skip
    threads, cookies = [], []
    with group_scope(group):
        for user in users:
            services.membership_create(group=group, user=user, actor=None)
        for user in users[:clients]:
            threads.append(chat_services.thread_create(group=group, agent=agent, user=user).pk)
            cookies.append(session_cookie(user))
        slow_user = users[clients]
        slow = chat_services.thread_create(group=group, agent=slow_agent, user=slow_user)
        warm = [
            chat_services.thread_create(group=group, agent=agent, user=slow_user).pk
            for _ in range(warmup)
        ]
    return Tenant(group, threads, cookies, slow.pk, session_cookie(slow_user), warm)


def stored_answers(group: Group, message_ids: list[str]) -> dict[str, tuple[str, str]]:
    with group_scope(group):
        rows = Message.objects.filter(pk__in=[pk for pk in message_ids if pk]).values_list(
            "pk", "content", "status"
        )
        return {str(pk): (content, status) for pk, content, status in rows}


# --- clients (plain data in and out, so they can run in worker processes) ---------------


@dataclass
class Stream:
    index: int
    ttft: float | None = None  # seconds from send to the first delta
    to_started: float | None = None  # seconds from send to run.started
    connect: float | None = None  # seconds to open the WebSocket (handshake, auth, access)
    total: float | None = None
    gaps: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    deltas: int = 0
    text: str = ""
    message_id: str = ""
    usage: dict = field(default_factory=dict)
    sent_at: float = 0.0
    done_at: float = 0.0
    error: str = ""


@dataclass
class Job:
    kind: str  # "direct" or "ws"
    url: str
    start_at: float  # perf_counter (CLOCK_MONOTONIC: the same in every process)
    ramp: float
    clients: list[tuple[int, str, str]]  # (index, thread id, session cookie); "" for direct
    origin: str
    model: str
    total_clients: int
    round: int


async def direct_stream(http: aiohttp.ClientSession, job: Job, index: int) -> Stream:
    result = Stream(index)
    body = {
        "model": job.model, "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "system", "content": SYSTEM},
                     {"role": "user", "content": f"{QUESTION} ({index})"}],
        "temperature": 0.7, "max_tokens": 1024,
    }  # fmt: skip
    await sleep_until(job.start_at + job.ramp * index / job.total_clients)
    result.sent_at = last = time.perf_counter()
    parts = []
    try:
        async with http.post(
            job.url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer b"}
        ) as response:
            async for line in response.content:
                if not line.startswith(b"data: "):
                    continue
                data = line[6:].strip()
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                now = time.perf_counter()
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    if result.ttft is None:
                        result.ttft = now - result.sent_at
                    else:
                        result.gaps.append(now - last)
                    last = now
                    result.deltas += 1
                    parts.append(chunk["choices"][0]["delta"]["content"])
    except Exception as error:  # a failed stream is counted
        result.error = repr(error)
    result.done_at = time.perf_counter()
    result.total = result.done_at - result.sent_at
    result.text = "".join(parts)
    return result


class Opened:
    """The send ramp starts once every socket of this client loop is open (and daphne has
    had SETTLE_SECONDS to finish the handshakes' work): opening 200 sockets is its own
    storm, reported apart, not part of any turn's time to first token."""

    def __init__(self, sockets: int, not_before: float) -> None:
        self.waiting = sockets
        self.not_before = not_before
        self.ramp_at: float | None = None
        self.event = asyncio.Event()

    async def all_open(self) -> float:
        self.count_out()
        await self.event.wait()
        return self.ramp_at

    def count_out(self) -> None:
        """This socket is open, or will never be."""
        self.waiting -= 1
        if self.waiting == 0:
            self.ramp_at = max(self.not_before, time.perf_counter() + SETTLE_SECONDS)
            self.event.set()


async def ws_stream(
    http: aiohttp.ClientSession, job: Job, index: int, thread: str, cookie: str, opened: Opened
):
    result = Stream(index)
    url = f"{job.url}/ws/threads/{thread}/"
    headers = {"Origin": job.origin, "Cookie": cookie}
    parts: list[str] = []
    counted = False
    try:
        async with asyncio.timeout(PLATFORM_TIMEOUT):
            opening = time.perf_counter()
            async with http.ws_connect(url, headers=headers, max_msg_size=0) as ws:
                result.connect = time.perf_counter() - opening
                counted = True
                start_at = await opened.all_open()
                await sleep_until(start_at + job.ramp * index / job.total_clients)
                frame = {"type": "message.send", "content": QUESTION,
                         "client_id": f"bench-{job.round}-{index}"}  # fmt: skip
                result.sent_at = last = time.perf_counter()
                await ws.send_str(json.dumps(frame))
                async for message in ws:
                    now = time.perf_counter()
                    if message.type != aiohttp.WSMsgType.TEXT:
                        result.error = f"socket ended: {message.type.name}"
                        break
                    event = json.loads(message.data)
                    kind = event["type"]
                    if "seq" in event:
                        result.seqs.append(event["seq"])
                    if kind == "delta":
                        if result.ttft is None:
                            result.ttft = now - result.sent_at
                        else:
                            result.gaps.append(now - last)
                        last = now
                        result.deltas += 1
                        parts.append(event["text"])
                    elif kind == "run.started":
                        result.to_started = now - result.sent_at
                    elif kind == "run.completed":
                        result.message_id = event["message_id"]
                        result.usage = event["usage"]
                        break
                    elif kind in ("error", "run.stopped"):
                        result.error = f"{kind}: {event.get('code', '')} {event.get('message', '')}"
                        break
                else:
                    result.error = result.error or "socket closed before run.completed"
    except Exception as error:  # a failed stream is counted
        if not counted:
            opened.count_out()
        result.error = repr(error) or type(error).__name__
    result.done_at = time.perf_counter()
    result.total = result.done_at - result.sent_at
    result.text = "".join(parts)
    return result


async def sleep_until(at: float) -> None:
    delay = at - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def loop_lag(stop: asyncio.Event, lags: list[float]) -> None:
    """How late this loop wakes from a 10 ms sleep: a saturated client loop shows here."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - before - 0.01)


async def run_job(job: Job) -> tuple[list[Stream], list[float]]:
    lags: list[float] = []
    stop = asyncio.Event()
    monitor = asyncio.create_task(loop_lag(stop, lags))
    connector = aiohttp.TCPConnector(limit=0, force_close=job.kind == "direct")
    timeout = aiohttp.ClientTimeout(total=PLATFORM_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        if job.kind == "direct":
            tasks = [direct_stream(http, job, index) for index, _, _ in job.clients]
        else:
            opened = Opened(len(job.clients), job.start_at)
            tasks = [ws_stream(http, job, i, thread, cookie, opened)
                     for i, thread, cookie in job.clients]  # fmt: skip
        streams = await asyncio.gather(*tasks)
    stop.set()
    await monitor
    return list(streams), lags


def run_job_in_process(job: Job) -> tuple[list[Stream], list[float]]:
    return asyncio.run(run_job(job))


def run_clients(job: Job, procs: int) -> tuple[list[Stream], list[float]]:
    """All clients on one loop, or split over `procs` processes (each its own loop)."""
    if procs <= 1:
        return asyncio.run(run_job(job))
    connections.close_all()
    slices = [job.clients[k::procs] for k in range(procs)]
    jobs = [Job(**{**job.__dict__, "clients": part}) for part in slices]
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        results = pool.map(run_job_in_process, jobs)
    streams = sorted((s for part, _ in results for s in part), key=lambda s: s.index)
    return streams, [lag for _, part in results for lag in part]


# --- checks -------------------------------------------------------------------------------


def check_streams(streams: list[Stream], stored: dict[str, tuple[str, str]]) -> dict:
    """Deltas lost or repeated: seq must be 1..n exactly, text must equal the stored answer."""
    problems: list[str] = []
    lost = duplicated = mismatched = failed = 0
    for stream in streams:
        if stream.error or not stream.message_id:
            failed += 1
            problems.append(f"client {stream.index}: {stream.error or 'no run.completed'}")
            continue
        seen = set(stream.seqs)
        duplicated += len(stream.seqs) - len(seen)
        lost += max(stream.seqs) - len(seen)
        if stream.seqs != sorted(stream.seqs):
            problems.append(f"client {stream.index}: seq out of order")
        content, status = stored.get(stream.message_id, ("", "missing"))
        if content != stream.text or status != Message.Status.COMPLETE:
            mismatched += 1
            problems.append(
                f"client {stream.index}: text {len(stream.text)} chars vs stored "
                f"{len(content)} ({status})"
            )
        tokens = count_tokens(stream.text)
        if stream.usage.get("output") not in (None, tokens):
            problems.append(
                f"client {stream.index}: {tokens} tokens received, usage says "
                f"{stream.usage.get('output')} output tokens"
            )
    return {"lost": lost, "duplicated": duplicated, "mismatched": mismatched,
            "failed": failed, "problems": problems}  # fmt: skip


def peak_concurrency(streams: list[Stream]) -> tuple[int, float]:
    """Most streams in flight at once, and for how long all of them were."""
    edges = sorted(
        [(s.sent_at, 1) for s in streams if s.sent_at]
        + [(s.done_at, -1) for s in streams if s.sent_at]
    )
    live = peak = 0
    full_since, full_for = None, 0.0
    for at, step in edges:
        live += step
        peak = max(peak, live)
        if live == len(streams) and full_since is None:
            full_since = at
        elif live < len(streams) and full_since is not None:
            full_for += at - full_since
            full_since = None
    return peak, full_for


# --- the slow client: a raw WebSocket whose reading we can pause ----------------------------


class RawSocket:
    """Just enough RFC 6455 to read frames and then stop reading at the TCP level."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.local_port = writer.get_extra_info("sockname")[1]

    @classmethod
    async def connect(cls, port: int, path: str, cookie: str, origin: str) -> RawSocket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**16)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
             f"Origin: {origin}\r\nCookie: {cookie}\r\n\r\n").encode()
        )  # fmt: skip
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"handshake refused: {head[:80]!r}")
        return cls(reader, writer)

    def send_text(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        size = len(payload)
        head = (
            struct.pack("!BB", 0x81, 0x80 | size)
            if size < 126
            else struct.pack("!BBH", 0x81, 0x80 | 126, size)
        )
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)

    async def read_text(self) -> str:
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        payload = await self.reader.readexactly(size)
        if first & 0x0F != 0x1:
            return await self.read_text()  # a ping or pong: not a message
        return payload.decode()

    def pause(self) -> None:
        self.writer.transport.pause_reading()


def tcp_state(server_port: int, client_port: int) -> tuple[str, int, int]:
    """The daphne side of the connection: state, bytes in its send queue, in our receive queue."""
    states = {"01": "ESTABLISHED", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "06": "TIME_WAIT",
              "07": "CLOSE", "08": "CLOSE_WAIT", "0B": "CLOSING"}  # fmt: skip
    server, client_rx = ("GONE", 0), 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            parts = line.split()
            local, remote = int(parts[1].split(":")[1], 16), int(parts[2].split(":")[1], 16)
            tx, rx = (int(v, 16) for v in parts[4].split(":"))
            if (local, remote) == (server_port, client_port):
                server = (states.get(parts[3], parts[3]), tx)
            elif (local, remote) == (client_port, server_port):
                client_rx = rx
    return server[0], server[1], client_rx


async def slow_client(port: int, thread: int, cookie: str, origin: str, sampler: Sampler,
                      deadline: float) -> dict:  # fmt: skip
    """Read a few deltas, stop reading, watch daphne; then reconnect and resume."""
    out: dict = {"had_seq": 0, "disconnected_after": None, "samples": [], "message_id": ""}
    raw = await RawSocket.connect(port, f"/ws/threads/{thread}/", cookie, origin)
    raw.send_text(json.dumps({"type": "message.send", "content": QUESTION, "client_id": "slow"}))
    parts, seqs = [], []
    while len([s for s in seqs if s > 1]) < SLOW_DELTAS_READ:
        event = json.loads(await raw.read_text())
        if event["type"] == "run.started":
            out["message_id"] = event["message_id"]
        if "seq" in event:
            seqs.append(event["seq"])
        if event["type"] == "delta":
            parts.append(event["text"])
    raw.pause()
    paused_at = time.perf_counter()
    out["had_seq"] = seqs[-1]
    while time.perf_counter() < deadline:
        state, server_tx, client_rx = tcp_state(port, raw.local_port)
        out["samples"].append((time.perf_counter() - paused_at, sampler.last, server_tx, client_rx))
        out["max_server_queue"] = max(out.get("max_server_queue", 0), server_tx)
        if state != "ESTABLISHED":
            out["disconnected_after"] = time.perf_counter() - paused_at
            out["close_state"] = state
            break
        await asyncio.sleep(0.25)
    out["rss_at_disconnect"] = sampler.last
    raw.writer.transport.abort()

    # Reconnect and resume from what this client really has.
    await asyncio.sleep(1)
    resumed: list[str] = []
    url = f"ws://127.0.0.1:{port}/ws/threads/{thread}/"
    headers = {"Origin": origin, "Cookie": cookie}
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, headers=headers, max_msg_size=0) as ws,
        asyncio.timeout(60),
    ):
        await ws.send_str(json.dumps({"type": "stream.resume", "after_seq": out["had_seq"]}))
        async for message in ws:
            event = json.loads(message.data)
            if "seq" in event:
                seqs.append(event["seq"])
            if event["type"] == "delta":
                resumed.append(event["text"])
            if event["type"] in ("run.completed", "run.stopped", "error"):
                out["end"] = event["type"]
                break
    out["resumed_deltas"] = len(resumed)
    out["duplicated"] = len(seqs) - len(set(seqs))
    out["lost"] = max(seqs) - len(set(seqs))
    out["text"] = "".join(parts) + "".join(resumed)
    return out


# --- phases --------------------------------------------------------------------------------


def floor_phase(args, sim_url: str, sim_pid: int, clients: list, job) -> dict:
    """The same clients against daphne serving bench/floor/app.py: daphne, Channels and the
    SDK wire with none of Parley's work, in its own daphne processes (same count)."""
    log = Path(tempfile.mkstemp(prefix="daphne-floor-", suffix=".log")[1])
    model = {"PARLEY_FLOOR_MODEL": agent_model(args.words, args.tps)}
    with daphne_process(
        sim_url, processes=args.web_processes, ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout, log=log, app="bench.floor.app:application",
        extra_env=model,
    ) as (port, pids):  # fmt: skip
        url, origin = f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"
        sampler = Sampler({"daphne": pids, "simulator": (sim_pid,), "bench": (os.getpid(),)})
        sampler.start()
        run_clients(job("ws", url, clients[: args.warmup], 0.5, 0, origin), 1)
        phase = sampler.phase()
        with profiler(pids[0], args.py_spy_floor):
            streams, lags = run_clients(job("ws", url, clients, args.ramp, 1, origin), args.procs)
        summary = summarize("floor: daphne + Channels + SDK wire only", streams, lags, phase.end())
        sampler.stop()
    bad = [s.index for s in streams if s.error or s.seqs != list(range(1, len(s.seqs) + 1))]
    summary["errors"] += [f"client {index}: seq gap or error" for index in bad]
    log.unlink(missing_ok=True)
    return summary


def summarize(name: str, streams: list[Stream], lags: list[float], phase: dict | None) -> dict:
    ok = [s for s in streams if s.ttft is not None]
    gaps = [g for s in ok for g in s.gaps]
    return {
        "name": name,
        "ttft": [s.ttft * 1000 for s in ok],
        "started": [s.to_started * 1000 for s in ok if s.to_started is not None],
        "connect": [s.connect * 1000 for s in ok if s.connect is not None],
        "gaps": [g * 1000 for g in gaps],
        "total": [s.total for s in ok],
        "deltas": sum(s.deltas for s in streams),
        "errors": [s.error for s in streams if s.error],
        "lag": [lag * 1000 for lag in lags],
        "concurrency": peak_concurrency(streams),
        "phase": phase,
    }


def line(label: str, values: list[float], unit: str = "ms") -> str:
    if not values:
        return f"  {label:<34} (none)"
    return (
        f"  {label:<34} p50 {statistics.median(values):8.1f}  p99 {percentile(values, 0.99):8.1f}"
        f"  max {max(values):8.1f} {unit}"
    )


def print_phase(summary: dict) -> None:
    peak, full = summary["concurrency"]
    print(
        f"{summary['name']}: {len(summary['ttft'])} streams, {summary['deltas']} deltas, "
        f"peak {peak} in flight, all in flight for {full:.1f} s, errors {len(summary['errors'])}"
    )
    print(line("time to first delta", summary["ttft"]))
    if summary["started"]:
        print(line("time to run.started", summary["started"]))
    if summary["connect"]:
        print(line("WebSocket open (before the ramp)", summary["connect"]))
    print(line("inter-delta gap", summary["gaps"]))
    print(line("whole stream", summary["total"], "s"))
    print(line("client loop lag (10 ms timer)", summary["lag"]))
    phase = summary["phase"]
    if phase:
        cpu = phase["cpu"]
        named = [name for name in ("simulator", "bench", "postgres") if name in cpu]
        others = "; ".join(f"{name} {100 * cpu[name] / phase['wall']:.0f}%" for name in named)
        print(
            f"  daphne CPU {cpu['daphne']:.1f} s = {100 * cpu['daphne'] / phase['wall']:.0f}% "
            f"of a core ({phase['daphne_sys']:.1f} s system); {others}; machine busy "
            f"{100 * phase['machine']:.0f}% of 2 cores over {phase['wall']:.1f} s"
        )
        print(
            f"  daphne RSS {phase['rss_start'] / 1024:.0f} -> peak "
            f"{phase['rss_peak'] / 1024:.0f} MiB (end {phase['rss_end'] / 1024:.0f} MiB)"
        )
    for error in sorted(set(summary["errors"]))[:5]:
        print(f"  error: {error}")


def main(args: argparse.Namespace) -> int:
    n = args.clients
    print(
        f"streams bench: {n} clients, {agent_model(args.words, args.tps)}, ramp {args.ramp:g} s, "
        f"{args.procs} client process(es), {args.web_processes} daphne process(es); "
        f"load average before: {loadavg()}"
    )
    tenant = setup_tenant(n, words=args.words, tps=args.tps, slow_words=args.slow_words,
                          warmup=args.warmup)  # fmt: skip
    model = agent_model(args.words, args.tps)
    log = Path(tempfile.mkstemp(prefix="daphne-", suffix=".log")[1])
    exit_code = 0
    with (
        simulator_process() as (sim_url, sim_pid),
        daphne_process(
            sim_url,
            processes=args.web_processes,
            ping_interval=args.ping_interval,
            ping_timeout=args.ping_timeout,
            log=log,
        ) as (port, daphne_pids),
    ):
        origin = f"http://127.0.0.1:{port}"
        sampler = Sampler(
            {"daphne": daphne_pids, "simulator": (sim_pid,), "bench": (os.getpid(),)},
            postgres=postmaster_pid(settings.DATABASES["default"]["PORT"]),
        )
        sampler.start()

        def job(
            kind: str, url: str, clients: list, ramp: float, round_: int, origin: str = origin
        ) -> Job:
            return Job(kind=kind, url=url, start_at=time.perf_counter() + 1.0, ramp=ramp,
                       clients=clients, origin=origin, model=model,
                       total_clients=len(clients), round=round_)  # fmt: skip

        ws_url = f"ws://127.0.0.1:{port}"
        warm = [(i, str(t), tenant.slow_cookie) for i, t in enumerate(tenant.warmup_threads)]
        run_clients(job("ws", ws_url, warm, 0.5, 0), 1)  # imports, pools, first connections
        clients = [(i, str(t), c) for i, (t, c) in
                   enumerate(zip(tenant.threads, tenant.cookies, strict=True))]  # fmt: skip

        phase = sampler.phase()
        direct = run_clients(job("direct", sim_url, [(i, "", "") for i in range(n)], args.ramp, 1),
                             args.procs)  # fmt: skip
        baseline = summarize("baseline: direct to the simulator", *direct, phase.end())

        floor = None
        if args.floor:
            floor = floor_phase(args, sim_url, sim_pid, clients, job)

        phase = sampler.phase()
        with profiler(daphne_pids[0], args.py_spy):
            streams, lags = run_clients(job("ws", ws_url, clients, args.ramp, 1), args.procs)
        platform = summarize("platform: WebSocket through daphne", streams, lags, phase.end())
        stored = stored_answers(tenant.group, [s.message_id for s in streams if s.message_id])
        checks = check_streams(streams, stored)
        print()
        print_phase(baseline)
        if floor:
            print_phase(floor)
        print_phase(platform)
        print(
            f"  deltas lost {checks['lost']}, duplicated {checks['duplicated']}, texts not "
            f"matching the stored answer {checks['mismatched']}, failed streams {checks['failed']}"
        )
        for problem in checks["problems"][:10]:
            print(f"  ! {problem}")
        sys.stdout.flush()

        slow = None
        if args.slow_client:
            phase = sampler.phase()
            deadline = time.perf_counter() + args.ping_interval + args.ping_timeout + 20
            with multiprocessing.get_context("fork").Pool(1) as pool:
                connections.close_all()
                second = pool.apply_async(
                    run_job_in_process, (job("ws", ws_url, clients, args.ramp, 2),)
                )
                try:
                    slow = asyncio.run(slow_client(port, tenant.slow_thread, tenant.slow_cookie,
                                                   origin, sampler, deadline))  # fmt: skip
                except Exception as error:  # reported, and counted as a failure
                    slow = {"error": repr(error), "message_id": ""}
                second_streams, second_lags = second.get()
            slow_phase = phase.end()
            stored = stored_answers(
                tenant.group,
                [s.message_id for s in second_streams if s.message_id] + [slow["message_id"]],
            )
            second_summary = summarize("slow-client phase: other clients' 2nd turn",
                                       second_streams, second_lags, slow_phase)  # fmt: skip
            second_checks = check_streams(second_streams, stored)
            slow["stored"] = stored.get(slow["message_id"], ("", "missing"))
        vmhwm = rss_total(daphne_pids, "VmHWM")
        sampler.stop()

    bad = checks["lost"] + checks["duplicated"] + checks["mismatched"] + checks["failed"]
    if slow is not None:
        print()
        print_phase(second_summary)
        print(
            f"  deltas lost {second_checks['lost']}, duplicated {second_checks['duplicated']}, "
            f"texts not matching {second_checks['mismatched']}, failed {second_checks['failed']}"
        )
        for problem in second_checks["problems"][:10]:
            print(f"  ! {problem}")
        bad += sum(second_checks[k] for k in ("lost", "duplicated", "mismatched", "failed"))
    if slow is not None and "error" in slow:
        print(f"slow client failed: {slow['error']}")
        bad += 1
    elif slow is not None:
        content, status = slow["stored"]
        resumed_ok = slow["text"] == content and slow.get("end") == "run.completed"
        bad += (not resumed_ok) + slow["lost"] + slow["duplicated"]
        peak_rss = max((s[1] for s in slow["samples"]), default=0)
        print(
            f"slow client ({args.slow_words} words unpaced, stops reading after "
            f"{SLOW_DELTAS_READ} deltas; daphne --ping-interval {args.ping_interval} "
            f"--ping-timeout {args.ping_timeout}):"
        )
        if slow["disconnected_after"] is None:
            print("  daphne did NOT drop the connection before the deadline")
        else:
            print(
                f"  daphne dropped it {slow['disconnected_after']:.1f} s after the client "
                f"stopped reading ({slow['close_state']})"
            )
        print(
            f"  most bytes queued in daphne's kernel send queue: "
            f"{slow.get('max_server_queue', 0):,}; answer stored: {len(content):,} chars ({status})"
        )
        print(
            f"  daphne RSS at phase start {slow_phase['rss_start'] / 1024:.0f} MiB, peak while "
            f"stalled {peak_rss / 1024:.0f} MiB, at the drop "
            f"{slow['rss_at_disconnect'] / 1024:.0f} MiB, "
            f"end {slow_phase['rss_end'] / 1024:.0f} MiB"
        )
        print(
            f"  resume after seq {slow['had_seq']}: {slow['resumed_deltas']} deltas, "
            f"lost {slow['lost']}, duplicated {slow['duplicated']}, text equals stored: "
            f"{'yes' if resumed_ok else 'NO'}"
        )

    added_ttft = [percentile(platform["ttft"], q) - percentile(baseline["ttft"], q)
                  for q in (0.5, 0.99)]  # fmt: skip
    added_gap = [percentile(platform["gaps"], q) - percentile(baseline["gaps"], q)
                 for q in (0.5, 0.99)]  # fmt: skip
    cpu = platform["phase"]["cpu"]["daphne"]
    wall = platform["phase"]["wall"]
    print()
    print(f"{'figure':<44} {'value':>12}")
    rows = [
        ("streams completed", f"{n - checks['failed']}/{n}"),
        ("added TTFT p50 (platform - direct)", f"{added_ttft[0]:.1f} ms"),
        ("added TTFT p99 (platform - direct)", f"{added_ttft[1]:.1f} ms"),
        ("inter-delta gap p99 platform / direct", f"{percentile(platform['gaps'], 0.99):.1f} / "
                                                  f"{percentile(baseline['gaps'], 0.99):.1f} ms"),
        ("inter-delta gap p99 beyond the simulator's", f"{added_gap[1]:.1f} ms"),
        ("deltas lost / duplicated / bad texts", f"{checks['lost']} / {checks['duplicated']} / "
                                                 f"{checks['mismatched']}"),
        ("daphne CPU (platform phase)", f"{cpu:.1f} s, {100 * cpu / wall:.0f}% of a core"),
        ("daphne RSS peak (platform phase)", f"{platform['phase']['rss_peak'] / 1024:.0f} MiB"),
        ("daphne VmHWM (whole run)", f"{vmhwm / 1024:.0f} MiB"),
        ("client loop lag p99 (platform phase)", f"{percentile(platform['lag'], 0.99):.1f} ms"),
    ]  # fmt: skip
    if slow is not None and "error" not in slow:
        dropped = slow["disconnected_after"]
        rows += [
            ("slow client dropped after", "never" if dropped is None else f"{dropped:.1f} s"),
            ("slow client resume complete", "yes" if resumed_ok else "NO"),
        ]
    if floor:
        floor_ttft = [percentile(floor["ttft"], q) - percentile(baseline["ttft"], q)
                      for q in (0.5, 0.99)]  # fmt: skip
        floor_cpu = floor["phase"]["cpu"]["daphne"]
        rows += [
            ("floor: added TTFT p50 / p99", f"{floor_ttft[0]:.1f} / {floor_ttft[1]:.1f} ms"),
            ("floor: daphne CPU; platform / floor", f"{floor_cpu:.1f} s; {cpu / floor_cpu:.2f}x"),
        ]
    for label, value in rows:
        print(f"{label:<44} {value:>12}")
    met = added_ttft[1] <= 100 and bad == 0
    print(
        f"target: {n} streams, p99 added TTFT <= 100 ms, 0 lost deltas -> "
        f"{'met' if met else 'NOT met'}; load average after: {loadavg()}"
    )
    if bad:
        exit_code = 1
        print(f"daphne log: {log}")
    else:
        log.unlink(missing_ok=True)
    return exit_code


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--words", type=int, default=300, help="answer length (~1.2 tokens/word)")
    parser.add_argument("--tps", type=float, default=50, help="simulator tokens per second")
    parser.add_argument("--ramp", type=float, default=3.0, help="seconds over which sends start")
    parser.add_argument("--procs", type=int, default=1, help="client processes (one loop each)")
    parser.add_argument(
        "--web-processes", type=int, default=web_processes(),
        help="daphne processes on one socket, as `make run` starts (PARLEY_WEB_PROCESSES, "
        "else one per core)",
    )  # fmt: skip
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--slow-words", type=int, default=12_000)
    parser.add_argument("--ping-interval", type=int, default=20, help="daphne's default: 20")
    parser.add_argument("--ping-timeout", type=int, default=30, help="daphne's default: 30")
    parser.add_argument(
        "--py-spy",
        metavar="FILE",
        help="profile daphne in the platform phase (.svg flame graph, .txt collapsed stacks)",
    )
    parser.add_argument("--py-spy-floor", metavar="FILE", help="the same, for the floor's daphne")
    parser.add_argument("--no-slow-client", dest="slow_client", action="store_false")
    parser.add_argument(
        "--floor", action="store_true",
        help="also run the clients against bench/floor/app.py (daphne, Channels and the SDK "
        "wire alone), between the baseline and the platform",
    )  # fmt: skip
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    sys.exit(main(args))

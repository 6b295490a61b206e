"""The streaming clients and their timings: plain data in and out, so they can run in
worker processes."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from dataclasses import dataclass, field

import aiohttp
from django.db import connections

from bench.streamslib.workload import QUESTION, SYSTEM

PLATFORM_TIMEOUT = 180
SETTLE_SECONDS = 1.0  # after the last socket opens, before the first send


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
        "model": job.model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"{QUESTION} ({index})"},
        ],
        "temperature": 0.7,
        "max_tokens": 1024,
    }
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
) -> Stream:
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
                frame = {
                    "type": "message.send",
                    "content": QUESTION,
                    "client_id": f"bench-{job.round}-{index}",
                }
                result.sent_at = time.perf_counter()
                await ws.send_str(json.dumps(frame))
                await read_run(ws, result, parts)
    except Exception as error:  # a failed stream is counted
        if not counted:
            opened.count_out()
        result.error = repr(error) or type(error).__name__
    result.done_at = time.perf_counter()
    result.total = result.done_at - result.sent_at
    result.text = "".join(parts)
    return result


async def read_run(ws: aiohttp.ClientWebSocketResponse, result: Stream, parts: list[str]) -> None:
    """Frames until the run ends, timing each delta into `result` and its text into `parts`."""
    last = result.sent_at
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
            tasks = [
                ws_stream(http, job, i, thread, cookie, opened) for i, thread, cookie in job.clients
            ]
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

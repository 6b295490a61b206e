"""The client that stops reading its socket mid-answer, then reconnects and resumes."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from bench.streamslib.accounting import Sampler
from bench.streamslib.rawsocket import RawSocket, tcp_state
from bench.streamslib.workload import QUESTION

SLOW_DELTAS_READ = 5  # the slow client reads this many deltas, then stops reading


async def slow_client(
    port: int, thread: int, cookie: str, origin: str, sampler: Sampler, deadline: float
) -> dict:
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
    await watch_until_dropped(raw, port, sampler, paused_at, deadline, out)
    raw.writer.transport.abort()

    await asyncio.sleep(1)
    resumed = await resume(port, thread, cookie, origin, out, seqs)
    out["resumed_deltas"] = len(resumed)
    out["duplicated"] = len(seqs) - len(set(seqs))
    out["lost"] = max(seqs) - len(set(seqs))
    out["text"] = "".join(parts) + "".join(resumed)
    return out


async def watch_until_dropped(
    raw: RawSocket, port: int, sampler: Sampler, paused_at: float, deadline: float, out: dict
) -> None:
    """Sample daphne's RSS and the kernel queues until daphne drops the paused socket."""
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


async def resume(
    port: int, thread: int, cookie: str, origin: str, out: dict, seqs: list[int]
) -> list[str]:
    """Reconnect and resume from what this client really has; the texts the resume sent."""
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
    return resumed

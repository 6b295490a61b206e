"""What the benchmarks' floors serve: the required stack alone, with none of Parley.

daphne and the platform's own OpenAI wire (the official SDK over its aiohttp transport,
raw SSE, paced reads: the same `chat_provider` a run uses), and

* for `bench/streams.py --floor`, a Channels consumer behind AllowedHostsOriginValidator:
  on `message.send` it starts a task owned by the process, streams the simulator's answer
  and sends each delta to its socket;
* for `bench/api.py`'s floor, `POST /v1/chat/completions`: the simulator's answer relayed
  as OpenAI's chunks (SSE), for the model the request names.

It starts as a Parley process does (`start_as_parley_does`). Nothing else: no Django
request handling, session, user or token, no database, no Redis, no rate limit, lock,
run log, ledger or title.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import uuid

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from agents.providers.base import ChatMessage, ChatRequest, TextDelta, UsageReport  # noqa: E402
from agents.providers.registry import chat_provider, prepare, resolve_endpoint  # noqa: E402

MODEL = os.environ.get("PARLEY_FLOOR_MODEL", "sim-gpt@text;words=300;tps=50;ttft_ms=0")
SYSTEM = "You are a helpful assistant."
runs: set[asyncio.Task] = set()  # owned by the process, as Parley's runs are


class FloorConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None) -> None:
        frame = json.loads(text_data or "{}")
        if frame.get("type") == "message.send":
            task = asyncio.create_task(self.run(str(frame.get("content", ""))))
            runs.add(task)
            task.add_done_callback(runs.discard)

    async def run(self, question: str) -> None:
        seq = 0
        message_id = str(uuid.uuid4())

        async def send(event: dict) -> None:
            nonlocal seq
            seq += 1
            await self.send(text_data=json.dumps({**event, "seq": seq}))

        await send({"type": "run.started", "run_id": message_id, "message_id": message_id})
        provider = chat_provider(resolve_endpoint("simulator"))
        request = ChatRequest(model=MODEL, system=SYSTEM, messages=[ChatMessage("user", question)])
        usage: dict = {}
        async for event in provider.stream(request):
            if isinstance(event, TextDelta):
                await send({"type": "delta", "text": event.text})
            elif isinstance(event, UsageReport):
                usage = {"input": event.input_tokens, "output": event.output_tokens}
        await send({"type": "run.completed", "message_id": message_id, "usage": usage})


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    body = {
        "id": "floor",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "floor",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def completions(scope, receive, send) -> None:
    """`POST /v1/chat/completions`, streamed: the simulator's answer as OpenAI's chunks."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    asked = json.loads(body)
    system = next((m["content"] for m in asked["messages"] if m["role"] == "system"), "")
    messages = [
        ChatMessage(m["role"], m["content"]) for m in asked["messages"] if m["role"] != "system"
    ]
    request = ChatRequest(model=asked["model"], system=system, messages=messages)
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    more = {"type": "http.response.body", "more_body": True}
    await send({**more, "body": _chunk({"role": "assistant", "content": ""})})
    async for event in chat_provider(resolve_endpoint("simulator")).stream(request):
        if isinstance(event, TextDelta):
            await send({**more, "body": _chunk({"content": event.text})})
    await send({**more, "body": _chunk({}, "stop")})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


application = ProtocolTypeRouter(
    {
        "http": completions,
        "websocket": AllowedHostsOriginValidator(
            URLRouter([path("ws/threads/<str:thread_id>/", FloorConsumer.as_asgi())])
        ),
    }
)


def start_as_parley_does() -> None:
    """What config.asgi does as a serving process starts, which any platform on this stack
    can do: the provider wire's one-time set-up (agents.providers.registry.prepare) off the
    first turns' event loop, and the startup objects frozen out of the collector's sight.
    Without the freeze, a full collection walked them all in the middle of the streams: a
    stall of 130-220 ms in one third of every ramp, which made the floor's p99 (and made
    the floor look slower than the stack is)."""
    prepare()
    gc.collect()
    gc.freeze()


start_as_parley_does()

"""What `bench/streams.py --floor` serves: the required stack alone, with none of Parley.

daphne, a Channels consumer behind AllowedHostsOriginValidator, and the platform's own
OpenAI wire (the official SDK over its aiohttp transport, raw SSE, paced reads: the same
`chat_provider` a run uses). On `message.send` it starts a task owned by the process,
streams the simulator's answer and sends each delta to its socket. Nothing else: no
session or user, no database, no Redis, no rate limit, lock, run log, ledger or title.
"""

from __future__ import annotations

import asyncio
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
from agents.providers.registry import chat_provider, resolve_endpoint  # noqa: E402

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


application = ProtocolTypeRouter(
    {
        "websocket": AllowedHostsOriginValidator(
            URLRouter([path("ws/threads/<str:thread_id>/", FloorConsumer.as_asgi())])
        )
    }
)

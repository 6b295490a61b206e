"""Fault injection with real processes: a Valkey of the suite's own, killed by its pid and
started again on the same port, and daphne processes pointed at it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
from pathlib import Path

import aiohttp
import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from chat import services as chat_services
from config.devservers import EmbeddedValkey
from ontology import services
from ontology.models import Thing
from ontology.scoping import group_scope
from tests.conftest import make_tenant, set_plan
from tests.servers import daphne_servers

TIMEOUT = 10
LONG_MODEL = "sim-gpt@slow;ttft_ms=0;tps=40;words=2000"  # streams for about a minute


class Valkey(EmbeddedValkey):
    """The suite's Valkey, keeping nothing across a restart (the worst case)."""

    def kill(self) -> None:
        """SIGKILL by pid: no shutdown, nothing saved. `start()` brings it back, same port."""
        os.kill(self.pid, signal.SIGKILL)
        self._server.terminate()  # reaps the process
        self._server = None

    def kill_and_restart(self) -> None:
        self.kill()
        self.start()


@pytest.fixture
def valkey():
    server = Valkey(Path(tempfile.mkdtemp(prefix="parley-faults-")), durable=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def two_processes(django_db_setup, simulator, valkey):
    """Two daphne processes on the test database and a Valkey of their own (per test: what
    one test breaks never reaches the next)."""
    with daphne_servers(2, simulator_url=simulator.url, env={"REDIS_URL": valkey.url()}) as urls:
        yield urls


@database_sync_to_async
def a_thread(model: str = LONG_MODEL):
    set_plan("free", message_rate_user="1000/d", message_rate_group="1000/d")
    tenant = make_tenant("acme")
    agent = services.thing_create(
        group=tenant.group,
        type=Thing.Type.AGENT,
        name="Chat agent",
        actor=tenant.owner,
        properties={"provider": "simulator", "model": model},
    )
    with group_scope(tenant.group):
        thread = chat_services.thread_create(
            group=tenant.group, agent=agent, user=tenant.member, title="A story"
        )
    return tenant, thread


class Socket:
    """An outside client's socket on one daphne process; it keeps every frame it got."""

    def __init__(self, websocket: aiohttp.ClientWebSocketResponse) -> None:
        self.websocket = websocket
        self.frames: list[dict] = []

    @classmethod
    async def open(cls, session, url: str, thread_id: int, cookie: str) -> Socket:
        websocket = await session.ws_connect(
            url.replace("http://", "ws://") + f"/ws/threads/{thread_id}/",
            origin=url,
            headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"},
        )
        return cls(websocket)

    async def send(self, **frame) -> None:
        await self.websocket.send_str(json.dumps(frame))

    async def until(self, condition, within: float = TIMEOUT) -> dict:
        """The first frame from now on that satisfies `condition`; a close or silence for
        `within` seconds fails the test."""
        while True:
            message = await asyncio.wait_for(self.websocket.receive(), within)
            assert message.type == aiohttp.WSMsgType.TEXT, (message, self.frames[-3:])
            frame = json.loads(message.data)
            self.frames.append(frame)
            if condition(frame):
                return frame

    def run_frames(self, run_id: str) -> list[dict]:
        return [f for f in self.frames if f.get("run_id") == run_id and "seq" in f]

    async def close(self) -> None:
        await self.websocket.close()


def of_type(*types: str):
    return lambda frame: frame["type"] in types

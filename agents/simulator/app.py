"""The simulator as one aiohttp application: each wire on the path the real API uses."""

from __future__ import annotations

from aiohttp import web

from agents.simulator.anthropic_messages import messages
from agents.simulator.embeddings import embeddings
from agents.simulator.openai_chat import chat_completions
from agents.simulator.state import STATE, SimulatorConfig, SimulatorState


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def build_app(
    config: SimulatorConfig | None = None, *, state: SimulatorState | None = None
) -> web.Application:
    """The simulator as an aiohttp application; pass ``state`` to read its logs from outside."""
    app = web.Application()
    app[STATE] = state or SimulatorState(config=config or SimulatorConfig())
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/healthz", healthz)
    return app

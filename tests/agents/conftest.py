"""Engine fixtures: the provider simulator over HTTP and a real Celery worker on the test Redis."""

import asyncio
import threading
from dataclasses import dataclass

import pytest
from channels.db import database_sync_to_async

from agents.tools.registry import TOOLS, ToolFailed, ToolSpec, object_schema, register_tool
from chat import services as chat_services
from ontology import services
from ontology.models import Thing
from ontology.scoping import group_scope
from tests.conftest import make_tenant

WIRES = [("simulator", "sim-gpt"), ("simulator-anthropic", "sim-claude")]


def ingest_text(group, title: str, text: str, actor=None):
    """Add pasted knowledge and ingest it here and now, as the embeddings worker would.

    Nothing is queued: the session's Celery worker must not ingest it at the same time.
    """
    from agents import knowledge

    source, _ = knowledge.source_add_text(
        group=group, title=title, text=text, actor=actor, queue=False
    )
    return knowledge.source_process(group=group, source_id=source.pk)


class Recorder:
    """A sink that keeps every event and lets a test wait for one without sleeping."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.first_delta = asyncio.Event()

    async def emit(self, event: dict) -> None:
        self.events.append(event)
        if event["type"] == "delta":
            self.first_delta.set()

    def of(self, event_type: str) -> list[dict]:
        return [e for e in self.events if e["type"] == event_type]

    @property
    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


@dataclass
class Conversation:
    tenant: object
    agent: Thing
    thread: object


def _conversation(slug: str, question: str, properties: dict) -> Conversation:
    tenant = make_tenant(slug)
    agent = services.thing_create(
        group=tenant.group,
        type=Thing.Type.AGENT,
        name="Engine agent",
        properties=properties,
        actor=tenant.owner,
    )
    with group_scope(tenant.group):
        thread = chat_services.thread_create(group=tenant.group, agent=agent, user=tenant.member)
        chat_services.message_create_user(thread=thread, user=tenant.member, content=question)
    return Conversation(tenant, agent, thread)


@pytest.fixture
def conversation():
    """Build a tenant, an agent with the given properties, and a thread with one question."""

    async def build(properties: dict, question: str = "What is our refund policy?", slug="acme"):
        return await database_sync_to_async(_conversation)(slug, question, properties)

    return build


@pytest.fixture
def test_tools():
    """Tools that fail on purpose, registered for one test."""
    release = threading.Event()

    def explode(ctx, arguments):
        raise RuntimeError("boom")

    def refuse(ctx, arguments):
        raise ToolFailed("The warehouse system said no.")

    def hang(ctx, arguments):
        release.wait(timeout=30)
        return {"late": True}

    names = []
    for name, execute in (("explodeTool", explode), ("refuseTool", refuse), ("hangTool", hang)):
        register_tool(ToolSpec(name, name, f"Test tool {name}.", object_schema({}, []), execute))
        names.append(name)
    yield names
    release.set()
    for name in names:
        TOOLS.pop(name, None)

"""The per-process cache of agents and keys never serves a change late."""

import pytest
from channels.db import database_sync_to_async
from django.core.cache import cache

from agents import services as agent_services
from chat.models import Message
from ontology import services
from ontology.models import Thing
from ontology.scoping import group_scope
from tests.agents.test_engine import agent_props, run_agent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("thread_connections"),
]


@database_sync_to_async
def update_agent(convo, **properties):
    services.thing_update(
        thing=convo.agent,
        actor=convo.tenant.owner,
        properties={**convo.agent.properties, **properties},
    )


async def test_an_agent_change_applies_to_the_next_run(sim, conversation):
    convo = await conversation(agent_props("simulator", "sim-gpt@text"))
    await run_agent(convo)
    await update_agent(convo, model="sim-gpt@text;words=3")
    await run_agent(convo)
    assert [r["model"] for r in sim.request_log] == ["sim-gpt@text", "sim-gpt@text;words=3"]


async def test_a_disabled_agent_stops_answering_at_once(sim, conversation):
    convo = await conversation(agent_props("simulator", "sim-gpt@text"))
    await run_agent(convo)

    @database_sync_to_async
    def disable():
        services.thing_update(thing=convo.agent, actor=convo.tenant.owner, status="disabled")

    await disable()
    _, result, sink = await run_agent(convo)
    assert sink.of("error")[0]["code"] == "agent_unavailable"
    assert result.status == Message.Status.ERROR
    assert len(sim.request_log) == 1


async def test_a_new_key_applies_to_the_next_run(sim, conversation, settings):
    settings.PARLEY_ALLOW_PRIVATE_BASE_URLS = True
    convo = await conversation(agent_props("simulator", "sim-gpt@text"))
    await run_agent(convo)

    @database_sync_to_async
    def store_key():
        agent_services.credential_set(
            group=convo.tenant.group,
            provider="simulator",
            api_key="group-own-key",
            base_url="http://127.0.0.1:9/v1",
            actor=None,
        )

    await store_key()
    _, _, sink = await run_agent(convo)
    assert sink.of("error")[0]["code"] == "provider_unavailable"


async def test_a_redis_restart_forces_a_reload(sim, conversation):
    convo = await conversation(agent_props("simulator", "sim-gpt@text"))
    await run_agent(convo)

    @database_sync_to_async
    def change_behind_the_caches_back():
        # A write whose version bump was lost, then Redis loses its keys too.
        with group_scope(convo.tenant.group):
            Thing.objects.filter(pk=convo.agent.pk).update(
                properties={**convo.agent.properties, "model": "sim-gpt@text;words=2"}
            )
        cache.clear()

    await change_behind_the_caches_back()
    await run_agent(convo)
    assert sim.request_log[-1]["model"] == "sim-gpt@text;words=2"

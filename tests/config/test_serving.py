"""What a serving process sets up for itself when config.asgi is imported."""

import gc
import json
import logging
import os
import ssl
import subprocess
import sys

import pytest

from config.celery import app


def test_the_objects_made_at_startup_are_out_of_the_collectors_sight():
    # Imported here, not at collection: the application builds its middleware with the
    # settings of the moment, and the suite's (no HTTPS redirect) are set per test.
    import config.asgi

    assert config.asgi.application is not None
    assert gc.get_freeze_count() > 50_000  # Django's apps and models, the SDKs' types


@pytest.mark.parametrize("setting, full_after", [("", 100), ("250", 250), ("0", 10)])
def test_a_serving_process_makes_full_collections_rarer(setting, full_after):
    """PARLEY_GC_FULL_AFTER second-generation collections between full ones (Python's own
    10 with 0); the younger generations keep Python's thresholds."""
    env = {**os.environ, "PARLEY_GC_FULL_AFTER": setting}
    if not setting:
        del env["PARLEY_GC_FULL_AFTER"]
    shown = subprocess.run(
        [sys.executable, "-c", "import gc, config.asgi; print(list(gc.get_threshold()))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(shown.stdout.splitlines()[-1]) == [700, 10, full_after]


def test_the_providers_transport_does_not_log_every_model_call():
    import config.asgi  # noqa: F401 - sets up what a serving process has

    assert logging.getLogger("httpx2").getEffectiveLevel() >= logging.WARNING


FIRST_CALLS = """
import asyncio, json, sys
import config.asgi  # a serving process's start
from django.contrib.sessions.backends.signed_cookies import SessionStore
from agents.providers.base import ChatMessage, ChatRequest
from agents.providers.registry import Endpoint, chat_provider, close_clients, tls_context

before, contexts = set(sys.modules), tls_context.cache_info().currsize


async def first_turns():
    for wire, url in (("openai", sys.argv[1]), ("anthropic", sys.argv[2])):
        endpoint = Endpoint(provider=wire, wire=wire, api_key="k", base_url=url, public_only=False)
        request = ChatRequest(
            model="sim-gpt@text;words=5", system="s", messages=[ChatMessage("user", "hi")]
        )
        deltas = [event async for event in chat_provider(endpoint).stream(request)]
        assert deltas, wire
    await close_clients()


asyncio.run(first_turns())
SessionStore().decode(SessionStore().encode({"seen": 1}))  # a socket's first session read
from chat.tasks import title_thread  # as chat.titles.title_later queues a first title
from ontology import queueing

kwargs = {"group_id": 0, "thread_id": 0, "user_id": None}
queueing.queue(title_thread, kwargs=kwargs, retry=False, queue=sys.argv[3])
print(json.dumps({"contexts": contexts, "imported": sorted(set(sys.modules) - before)}))
"""


@pytest.fixture
def private_queue():
    """A queue no worker reads, emptied after the test."""
    name = "parley-test-first-calls"
    yield name
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(name)


def test_a_serving_process_has_made_what_its_first_turns_need_before_it_serves(
    simulator, private_queue
):
    # In a process of its own: this one has imported everything long ago. A first turn that
    # imported modules or made the TLS context did it on the event loop, holding up every
    # socket of the process (some 60 ms on a small machine).
    urls = [simulator.openai_base_url, simulator.anthropic_base_url]
    done = subprocess.run(
        [sys.executable, "-c", FIRST_CALLS, *urls, private_queue],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    made = json.loads(done.stdout.strip().splitlines()[-1])
    assert made == {"contexts": 1, "imported": []}
    with app.connection_for_write() as connection:
        assert connection.default_channel.client.llen(private_queue) == 1  # the title went


def test_a_step_that_fails_as_the_process_starts_is_logged_and_the_others_still_run(
    monkeypatch, caplog
):
    import config.asgi

    ran = []

    def no_certificates():
        raise ssl.SSLError("no certificates")

    monkeypatch.setattr(config.asgi.providers, "prepare", no_certificates)
    monkeypatch.setattr(config.asgi.titles, "prepare", lambda: ran.append("titles"))
    with caplog.at_level(logging.ERROR, logger="config.asgi"):
        config.asgi.prepare_process()  # raises nothing: the process serves all the same
    assert ran == ["titles"]
    assert "could not prepare" in caplog.text
    assert "no_certificates" in caplog.text

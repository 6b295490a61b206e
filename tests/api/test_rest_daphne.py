"""The JSON API's Server-Sent Events over real daphne processes: a program that hangs up
midway leaves the run going, and a reader on another process follows it from the log."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from chat.models import Message
from ontology.scoping import group_scope
from tests.api.test_rest import API, World
from tests.api.test_rest_streams import SLOW, TIMEOUT, parse_event, seqs, text_of
from tests.servers import daphne_servers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clear_cache")]


@pytest.fixture(scope="module")
def two_daphnes(django_db_setup, simulator):
    with daphne_servers(2, simulator_url=simulator.url) as urls:
        yield urls


class SSEClient:
    """A program reading an SSE response over a plain HTTP connection."""

    def __init__(self, base: str, method: str, path: str, secret: str, body=None, **headers):
        parts = urlsplit(base)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
        headers = {"Authorization": f"Bearer {secret}", **headers}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.connection.request(method, API + path, data, headers)
        self.response = self.connection.getresponse()
        assert self.response.status == 200, self.response.read()
        assert self.response.getheader("Content-Type").startswith("text/event-stream")

    def events(self):
        block = []
        while True:
            line = self.response.readline().decode()
            if not line:
                return
            if line == "\n":
                event = parse_event("".join(block))
                block = []
                yield event
                if event["type"] in ("run.completed", "run.stopped", "error"):
                    return
            else:
                block.append(line)

    def close(self) -> None:
        self.connection.close()


@pytest.mark.usefixtures("sim")
def test_over_daphne_a_client_that_leaves_midstream_leaves_the_run_going(two_daphnes):
    """The run streams in one process; its poster hangs up midway; a reader on the other
    process follows it from the log to its end, and the whole answer is stored."""
    w = World(SLOW)
    first, second = two_daphnes
    poster = SSEClient(
        first,
        "POST",
        f"/threads/{w.thread.pk}/messages",
        w.secrets["author"],
        {"content": "Tell me a story", "stream": True},
    )
    seen = []
    for event in poster.events():
        seen.append(event)
        if event["type"] == "delta":
            break
    poster.close()  # the program goes away; the run does not
    run_id = seen[1]["run_id"]
    reader = SSEClient(
        second,
        "GET",
        f"/threads/{w.thread.pk}/runs/{run_id}/events",
        w.secrets["owner"],
        Accept="text/event-stream",
        **{"Last-Event-ID": "1"},
    )
    followed = list(reader.events())
    reader.close()
    assert seqs(followed) == list(range(2, len(followed) + 2))
    assert followed[-1]["type"] == "run.completed"
    with group_scope(w.a.group):
        answer = Message.objects.get(pk=seen[1]["message_id"])
    assert (answer.status, answer.content) == ("complete", text_of(followed))

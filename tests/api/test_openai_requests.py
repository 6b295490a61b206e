"""What the OpenAI-compatible endpoint refuses, and how: OpenAI's error shape and status for
a bad key, a missing scope, an unknown model and a body Parley cannot honour, before any
provider is called. In-process (Django's test client); the SDK's view is in test_openai_sdk."""

import json

import pytest
from django.test import Client

from billing.models import AICall
from chat import services as chat_services
from ontology import services
from ontology.models import Thing
from ontology.scoping import group_scope
from ontology.tokens import token_create
from tests.conftest import make_tenant

# The views run their database work on the request pool's threads: data must be committed.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clear_cache")]

COMPLETIONS = "/v1/chat/completions"


@pytest.fixture
def alpha():
    return make_tenant("alpha")


def bearer(tenant, *scopes: str) -> dict:
    _, secret = token_create(
        group=tenant.group, user=tenant.member, name="t", scopes=scopes, actor=tenant.member
    )
    return {"Authorization": f"Bearer {secret}"}


def model_of(agent) -> str:
    return f"alpha-agent-{agent.pk}"


def post(headers: dict, body, url: str = COMPLETIONS):
    data = body if isinstance(body, str) else json.dumps(body)
    return Client().post(url, data=data, content_type="application/json", headers=headers)


def openai_error(response) -> dict:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_no_key_a_malformed_key_and_an_unknown_key_are_one_401(alpha):
    for headers in (
        {},
        {"Authorization": "Bearer sk-abc"},
        {"Authorization": "Bearer prl_" + "x" * 40},
    ):
        response = post(headers, {"model": "m", "messages": []})
        assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
        assert openai_error(response)["code"] == "unauthenticated"


def test_each_route_needs_its_scope(alpha):
    read_only, chat_only = bearer(alpha, "read"), bearer(alpha, "chat")
    question = {"model": model_of(alpha.agent), "messages": [{"role": "user", "content": "Hi"}]}
    for response in (
        post(read_only, question),
        post(read_only, {"model": "m", "input": "x"}, "/v1/embeddings"),
        Client().get("/v1/models", headers=chat_only),
    ):
        assert response.status_code == 403
        assert openai_error(response)["type"] == "permission_error"
    listed = Client().get("/v1/models", headers=read_only).json()
    assert [m["id"] for m in listed["data"]] == [model_of(alpha.agent)]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ("{not json", None),
        ([], None),
        ({"messages": [{"role": "user", "content": "Hi"}]}, "model"),
        ({"model": "M", "messages": []}, "messages"),
        ({"model": "M", "messages": [{"role": "assistant", "content": "Hi"}]}, "messages"),
        ({"model": "M", "messages": [{"role": "user", "content": "  "}]}, "messages"),
        (
            {
                "model": "M",
                "messages": [{"role": "user", "content": "Hi"}, {"role": "system", "content": "x"}],
            },
            "messages",
        ),
        ({"model": "M", "messages": [{"role": "tool", "content": "42"}]}, "messages[0].role"),
        (
            {
                "model": "M",
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
                ],
            },
            "messages[0].content",
        ),
        ({"model": "M", "n": 2, "messages": [{"role": "user", "content": "Hi"}]}, "n"),
        (
            {"model": "M", "stream": "yes", "messages": [{"role": "user", "content": "Hi"}]},
            "stream",
        ),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "no-model",
        "no-messages",
        "last-from-assistant",
        "last-empty",
        "last-from-system",
        "tool-result",
        "image",
        "n-2",
        "stream-not-bool",
    ],
)
def test_a_body_parley_cannot_honour_is_a_400_naming_its_field(alpha, body, param):
    if isinstance(body, dict) and body.get("model") == "M":
        body["model"] = model_of(alpha.agent)
    response = post(bearer(alpha, "chat"), body)
    assert response.status_code == 400
    error = openai_error(response)
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    with group_scope(alpha.group):
        assert not AICall.objects.exists()


def test_text_parts_are_read_as_text(alpha, sim):
    services.thing_update(
        thing=alpha.agent,
        actor=alpha.owner,
        properties={"provider": "simulator", "model": 'sim-gpt@text;reply="Fine."'},
    )
    parts = [{"type": "text", "text": "How "}, {"type": "text", "text": "are you?"}]
    response = post(
        bearer(alpha, "chat"),
        {"model": model_of(alpha.agent), "messages": [{"role": "user", "content": parts}]},
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Fine."
    assert "How are you?" in json.dumps(sim.request_log[-1])


def test_a_model_id_names_one_active_agent_of_the_tokens_group_and_nothing_else(alpha):
    bravo = make_tenant("bravo")
    headers = bearer(alpha, "chat", "read")
    other = services.thing_create(
        group=alpha.group,
        type=Thing.Type.AGENT,
        name="Night shift",
        properties={"provider": "simulator", "model": "sim-gpt"},
        actor=alpha.owner,
    )
    services.thing_update(thing=other, actor=alpha.owner, status=Thing.Status.DISABLED)
    unknown = [
        "gpt-4o",
        f"alpha-agent-{bravo.agent.pk}",  # another tenant's agent under this tenant's name
        f"bravo-agent-{bravo.agent.pk}",
        f"renamed-{alpha.agent.pk}",  # the right id with a slug that is not the agent's
        f"night-shift-{other.pk}",  # disabled
        f"alpha-agent-{alpha.agent.pk}-",
    ]
    for model in unknown:
        response = post(headers, {"model": model, "messages": [{"role": "user", "content": "x"}]})
        assert response.status_code == 404, model
        assert (openai_error(response)["param"], openai_error(response)["code"]) == (
            "model",
            "not_found",
        )
        detail = Client().get(f"/v1/models/{model}", headers=headers)
        assert detail.status_code == 404
    listed = Client().get("/v1/models", headers=headers).json()["data"]
    assert [m["id"] for m in listed] == [model_of(alpha.agent)]


def test_a_thread_answered_by_another_agent_wants_that_agents_model(alpha):
    second = services.thing_create(
        group=alpha.group,
        type=Thing.Type.AGENT,
        name="Second",
        properties={"provider": "simulator", "model": "sim-gpt"},
        actor=alpha.owner,
    )
    with group_scope(alpha.group):
        thread = chat_services.thread_create(group=alpha.group, agent=second, user=alpha.member)
    response = Client().post(
        COMPLETIONS,
        data=json.dumps(
            {"model": model_of(alpha.agent), "messages": [{"role": "user", "content": "Hi"}]}
        ),
        content_type="application/json",
        headers={**bearer(alpha, "chat"), "X-Parley-Thread": str(thread.pk)},
    )
    assert response.status_code == 400 and openai_error(response)["param"] == "model"


def test_only_post_reaches_the_completions(alpha):
    assert Client().get(COMPLETIONS, headers=bearer(alpha, "chat")).status_code == 405

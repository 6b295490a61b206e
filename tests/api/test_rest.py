"""The JSON API (/api/v1/) through Django's async handler: tokens, tenants and thread
readers, bodies, and turns answered by the provider simulator. Streams: test_rest_streams.py."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from billing.models import AICall
from chat import services as chat_services
from chat.models import Message
from ontology import services, tokens
from ontology.models import ApiToken, Membership, Thing
from ontology.scoping import group_scope, scopes_disabled
from tests.conftest import make_tenant, make_user, set_plan

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_runs", "thread_connections", "clear_cache"),
]
API = "/api/v1"
MISSING = 999_999


class World:
    """Tenant A (a member with a titled thread, a colleague, the owner) and tenant B, each
    person with a token; the agents answer through the simulator."""

    def __init__(self, model: str) -> None:
        self.a, self.b = make_tenant("acme"), make_tenant("globex")
        self.colleague = make_user("colleague@acme.example")
        services.membership_create(
            group=self.a.group,
            user=self.colleague,
            role=Membership.Role.MEMBER,
            actor=self.a.owner,
        )
        self.agent = services.thing_create(
            group=self.a.group,
            type=Thing.Type.AGENT,
            name="Chat agent",
            actor=self.a.owner,
            properties={"provider": "simulator", "model": model},
        )
        with group_scope(self.a.group):
            self.thread = chat_services.thread_create(
                group=self.a.group, agent=self.agent, user=self.a.member, title="A story"
            )
        with group_scope(self.b.group):
            self.other_thread = chat_services.thread_create(
                group=self.b.group, agent=self.b.agent, user=self.b.member, title="Theirs"
            )
        self.secrets = {
            "author": self.token(self.a.group, self.a.member),
            "colleague": self.token(self.a.group, self.colleague),
            "owner": self.token(self.a.group, self.a.owner),
            "other": self.token(self.b.group, self.b.member),
            "reader": self.token(self.a.group, self.a.member, scopes=["read"]),
        }

    @staticmethod
    def token(group, user, scopes=("chat", "read")) -> str:
        return tokens.token_create(group=group, user=user, name="bot", scopes=scopes, actor=None)[1]


@database_sync_to_async
def world(model: str = "sim-gpt@text;words=20") -> World:
    return World(model)


async def call(method: str, path: str, secret: str | None = None, body=None, **headers):
    """One request through Django's async handler, as a program would send it."""
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    client = AsyncClient()
    if method == "GET":
        return await client.get(API + path, headers=headers)
    data = body if isinstance(body, str | bytes) else json.dumps(body if body is not None else {})
    return await client.generic(
        method, API + path, data, content_type="application/json", headers=headers
    )


def error_of(response) -> str:
    body = json.loads(response.content)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]["code"]


# --- tokens -------------------------------------------------------------------------------


async def test_without_a_valid_token_every_route_answers_the_same_401(sim):
    w = await world()

    @database_sync_to_async
    def spoil():
        revoked = World.token(w.a.group, w.a.member)
        expired = World.token(w.a.group, w.a.member)
        removed = World.token(w.a.group, w.colleague)
        with scopes_disabled():
            tokens.token_revoke(token=ApiToken.objects.get(prefix=revoked[:12]), actor=None)
            ApiToken.objects.filter(prefix=expired[:12]).update(
                expires_at=timezone.now() - timedelta(seconds=1)
            )
        with group_scope(w.a.group):
            membership = Membership.objects.get(user=w.colleague)
            services.membership_delete(membership=membership, actor=w.a.owner)
        return revoked, expired, removed

    revoked, expired, removed = await spoil()
    garbage = "prl_" + "x" * 40
    answers = set()
    for secret in (None, garbage, "not-even-a-token", revoked, expired, removed):
        for method, path in (("GET", "/threads"), ("POST", f"/threads/{w.thread.pk}/messages")):
            response = await call(method, path, secret, {"content": "Hi"})
            assert response.status_code == 401
            assert response["WWW-Authenticate"].startswith("Bearer")
            answers.add(response.content)
    assert len(answers) == 1 and error_of(response) == "unauthenticated"


async def test_a_signed_in_session_is_not_a_token(sim):
    w = await world()
    client = AsyncClient()
    await client.aforce_login(w.a.member)
    response = await client.get(f"{API}/threads/{w.thread.pk}")
    assert (response.status_code, error_of(response)) == (401, "unauthenticated")


async def test_a_read_only_token_reads_but_cannot_write(sim):
    w = await world()
    secret = w.secrets["reader"]
    assert (await call("GET", f"/threads/{w.thread.pk}", secret)).status_code == 200
    for path, body in (
        ("/threads", {"agent_id": w.agent.pk}),
        (f"/threads/{w.thread.pk}/messages", {"content": "Hi"}),
        (f"/threads/{w.thread.pk}/stop", {}),
    ):
        response = await call("POST", path, secret, body)
        assert (response.status_code, error_of(response)) == (403, "insufficient_scope")
    assert sim.request_log == []


# --- who sees which thread ------------------------------------------------------------------

THREAD_ROUTES = [
    ("GET", "/threads/{id}", None),
    ("GET", "/threads/{id}/messages", None),
    ("POST", "/threads/{id}/messages", {"content": "Mine now?"}),
    ("POST", "/threads/{id}/stop", {}),
    ("GET", "/threads/{id}/runs/00000000-0000-0000-0000-000000000001/events", None),
]


@pytest.mark.parametrize(("method", "path", "body"), THREAD_ROUTES)
async def test_another_tenants_or_a_colleagues_thread_looks_missing(sim, method, path, body):
    w = await world()
    for visitor, thread_id in (
        ("other", w.thread.pk),  # tenant A's thread, asked for with tenant B's token
        ("author", w.other_thread.pk),  # and the other way round
        ("colleague", w.thread.pk),  # a member of A, not the thread's author
    ):
        seen = await call(method, path.format(id=thread_id), w.secrets[visitor], body)
        missing = await call(method, path.format(id=MISSING), w.secrets[visitor], body)
        assert seen.status_code == 404, (visitor, path)
        assert seen.content == missing.content
        assert error_of(seen) == "not_found"
    assert sim.request_log == []


async def test_owners_read_a_members_thread_but_may_not_write_in_it(sim):
    w = await world()
    owner = w.secrets["owner"]
    read = await call("GET", f"/threads/{w.thread.pk}", owner)
    assert (read.status_code, read.json()["writable"]) == (200, False)
    for path, body in ((f"/threads/{w.thread.pk}/messages", {"content": "Hi"}), ("/stop", {})):
        path = path if path.startswith("/threads") else f"/threads/{w.thread.pk}{path}"
        response = await call("POST", path, owner, body)
        assert (response.status_code, error_of(response)) == (403, "read_only")


async def test_thread_lists_show_what_each_may_read_newest_first_in_pages(sim):
    w = await world()

    @database_sync_to_async
    def more_threads():
        with group_scope(w.a.group):
            return [
                chat_services.thread_create(
                    group=w.a.group, agent=w.agent, user=user, title=f"T{n}"
                ).pk
                for n, user in enumerate([w.a.member, w.a.member, w.colleague])
            ]

    mine, also_mine, colleagues = await more_threads()
    first = (await call("GET", "/threads?limit=2", w.secrets["author"])).json()
    assert [t["id"] for t in first["data"]] == [also_mine, mine]
    second = await call("GET", f"/threads?limit=2&before={first['next']}", w.secrets["author"])
    assert ([t["id"] for t in second.json()["data"]], second.json()["next"]) == (
        [w.thread.pk],
        None,
    )
    owner = (await call("GET", "/threads", w.secrets["owner"])).json()["data"]
    assert [t["id"] for t in owner] == [colleagues, also_mine, mine, w.thread.pk]
    other = (await call("GET", "/threads", w.secrets["other"])).json()["data"]
    assert [t["id"] for t in other] == [w.other_thread.pk]
    bad = await call("GET", "/threads?limit=zero", w.secrets["author"])
    assert (bad.status_code, error_of(bad)) == (400, "invalid")


def disable_agent(w: World) -> None:
    """Tenant A's first agent (not the simulator one) is switched off."""
    with group_scope(w.a.group):
        services.thing_update(thing=w.a.agent, actor=w.a.owner, status=Thing.Status.DISABLED)


async def test_agents_are_the_groups_active_ones(sim):
    w = await world()

    await database_sync_to_async(disable_agent)(w)
    agents = (await call("GET", "/agents", w.secrets["author"])).json()["data"]
    assert [a["id"] for a in agents] == [w.agent.pk]  # not A's disabled one, nor B's
    chat = next(a for a in agents if a["id"] == w.agent.pk)
    assert (chat["provider"], chat["model"]) == ("simulator", "sim-gpt@text;words=20")


async def test_a_thread_starts_only_with_an_agent_of_the_tokens_group(sim):
    w = await world()
    made = await call(
        "POST", "/threads", w.secrets["author"], {"agent_id": w.agent.pk, "title": "New"}
    )
    assert made.status_code == 201
    assert (made.json()["title"], made.json()["agent"]["id"], made.json()["writable"]) == (
        "New",
        w.agent.pk,
        True,
    )
    listed = (await call("GET", f"/threads/{made.json()['id']}", w.secrets["author"])).json()
    assert listed == made.json()
    await database_sync_to_async(disable_agent)(w)
    disabled = await call("POST", "/threads", w.secrets["author"], {"agent_id": w.a.agent.pk})
    assert (disabled.status_code, error_of(disabled)) == (404, "agent_unavailable")
    theirs = await call("POST", "/threads", w.secrets["author"], {"agent_id": w.b.agent.pk})
    missing = await call("POST", "/threads", w.secrets["author"], {"agent_id": MISSING})
    assert theirs.status_code == 404 and theirs.content == missing.content
    for body, code in (
        ({}, "missing_field"),
        ({"agent_id": "1"}, "invalid"),
        ({"agent_id": w.agent.pk, "title": "a\x00b"}, "bad_text"),
        ("{not json", "bad_json"),
    ):
        response = await call("POST", "/threads", w.secrets["author"], body)
        assert (response.status_code, error_of(response)) == (400, code), body


# --- bodies and methods ---------------------------------------------------------------------


async def test_message_bodies_are_checked_like_the_sockets_frames(sim, settings):
    settings.PARLEY_MAX_MESSAGE_CHARS = 100
    w = await world()
    path = f"/threads/{w.thread.pk}/messages"
    for body, code in (
        ("{nope", "bad_json"),
        (b"\xff\xfe{}", "bad_json"),
        ("[1, 2]", "invalid"),
        ({}, "missing_field"),
        ({"content": "   "}, "empty"),
        ({"content": "x" * 101}, "too_long"),
        ({"content": "nul \x00 here"}, "bad_text"),
        ('{"content": "half \\ud800 a pair"}', "bad_text"),
        ({"content": 7}, "invalid"),
        ({"content": "Hi", "stream": "yes"}, "invalid"),
        ({"content": "Hi", "client_id": "c" * 65}, "invalid"),
    ):
        response = await call("POST", path, w.secrets["author"], body)
        assert (response.status_code, error_of(response)) == (400, code), body
    assert sim.request_log == []

    @database_sync_to_async
    def questions():
        with group_scope(w.a.group):
            return Message.objects.count()

    assert await questions() == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/threads"), ("DELETE", "/threads/1"), ("GET", "/threads/1/stop"), ("POST", "/usage")],
)
async def test_an_unknown_method_is_a_405_in_the_error_shape(method, path):
    response = await call(method, path, None)
    assert response.status_code == 405
    assert error_of(response) == "invalid" and response["Allow"]


# --- turns ----------------------------------------------------------------------------------


async def test_posting_waits_for_the_stored_answer_and_meters_the_tokens_user(sim):
    w = await world()
    response = await call(
        "POST",
        f"/threads/{w.thread.pk}/messages",
        w.secrets["author"],
        {"content": "Hello?", "client_id": "s1"},
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["question"]["content"], body["question"]["client_id"]) == ("Hello?", "s1")
    assert body["run"]["status"] == "completed" and "error" not in body["run"]
    assert body["run"]["usage"]["output_tokens"] > 0
    assert Decimal(body["run"]["cost"]) >= 0

    @database_sync_to_async
    def stored():
        with group_scope(w.a.group):
            answer = Message.objects.get(pk=body["answer"]["id"])
            return answer, list(AICall.objects.values_list("user_id", "output_tokens"))

    answer, ledger = await stored()
    assert (answer.status, answer.content) == ("complete", body["answer"]["content"])
    assert answer.content and body["answer"]["usage"]["output_tokens"] == answer.usage["output"]
    assert ledger and all(user_id == w.a.member.pk for user_id, _ in ledger)
    listed = (await call("GET", f"/threads/{w.thread.pk}/messages", w.secrets["owner"])).json()
    assert [m["id"] for m in listed["data"]] == [body["question"]["id"], body["answer"]["id"]]
    assert listed["data"][1]["content"] == answer.content


async def test_messages_page_in_their_stored_order(sim):
    w = await world()
    for text in ("one", "two"):
        response = await call(
            "POST", f"/threads/{w.thread.pk}/messages", w.secrets["author"], {"content": text}
        )
        assert response.status_code == 200
    path = f"/threads/{w.thread.pk}/messages"
    first = (await call("GET", f"{path}?limit=3", w.secrets["author"])).json()
    rest = (await call("GET", f"{path}?after={first['next']}", w.secrets["author"])).json()
    messages = first["data"] + rest["data"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert [messages[0]["content"], messages[2]["content"]] == ["one", "two"]
    assert rest["next"] is None
    stranger = await call(
        "GET", f"{path}?after=00000000-0000-0000-0000-000000000001", w.secrets["author"]
    )
    assert (stranger.status_code, error_of(stranger)) == (400, "invalid")


async def test_a_failed_run_is_a_200_with_the_runs_error(sim):
    w = await world("sim-gpt@context_length")
    response = await call(
        "POST", f"/threads/{w.thread.pk}/messages", w.secrets["author"], {"content": "Hi"}
    )
    assert response.status_code == 200
    run = response.json()["run"]
    assert run["status"] == "error" and run["error"]["code"] and run["error"]["message"]
    assert response.json()["answer"]["status"] == "error"


async def test_over_budget_the_post_is_a_402_and_no_provider_is_called(sim):
    w = await world()
    await database_sync_to_async(set_plan)("free", monthly_budget=Decimal("0"))
    response = await call(
        "POST", f"/threads/{w.thread.pk}/messages", w.secrets["author"], {"content": "Hi"}
    )
    assert (response.status_code, error_of(response)) == (402, "quota_exceeded")
    assert sim.request_log == []


async def test_over_the_message_rate_the_post_is_a_429_with_retry_after(sim):
    w = await world()
    await database_sync_to_async(set_plan)("free", message_rate_user="1/m")
    path = f"/threads/{w.thread.pk}/messages"
    assert (await call("POST", path, w.secrets["author"], {"content": "One"})).status_code == 200
    limited = await call("POST", path, w.secrets["author"], {"content": "Two"})
    assert (limited.status_code, error_of(limited)) == (429, "rate_limited")
    assert int(limited["Retry-After"]) >= 1


# --- usage ------------------------------------------------------------------------------------


async def test_usage_is_for_owners_and_admins_with_money_as_strings(sim):
    w = await world()
    response = await call(
        "POST", f"/threads/{w.thread.pk}/messages", w.secrets["author"], {"content": "Hi"}
    )
    assert response.status_code == 200
    member = await call("GET", "/usage", w.secrets["author"])
    assert (member.status_code, error_of(member)) == (403, "managers_only")
    report = (await call("GET", "/usage", w.secrets["owner"])).json()
    totals = report["totals"]
    assert totals["calls"] >= 1 and isinstance(totals["output_tokens"], int)
    assert isinstance(totals["cost"], str) and Decimal(totals["cost"]) >= 0
    assert [line["user_id"] for line in report["by_user"]] == [w.a.member.pk]
    assert isinstance(report["budget"]["spent"], str)
    other_owner = await database_sync_to_async(World.token)(w.b.group, w.b.owner)
    other = (await call("GET", "/usage", other_owner)).json()
    assert other["totals"]["calls"] == 0  # the other tenant's usage holds none of A's calls
    bad = await call("GET", "/usage?start=2026-13-01", w.secrets["owner"])
    assert (bad.status_code, error_of(bad)) == (400, "invalid")

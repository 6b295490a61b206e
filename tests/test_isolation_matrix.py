"""Who may reach what: every route and every socket action, tried by every kind of visitor.

ROUTES says, for every URL pattern Django's resolver knows, who may reach it, and
SOCKET_ACTIONS does the same for every frame type of the chat socket. A new route or
frame without an entry fails `test_every_route_and_frame_says_who_may_reach_it`; the
tests below then ask each object-bearing route for another tenant's object and another
member's object as anonymous, member, admin and owner, and hold that whoever may not
see an object gets exactly what a missing one gets.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from enum import StrEnum

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from agents.models import Agent, Knowledge, KnowledgeSource, ProviderCredential
from billing.models import AICall, BudgetReservation, MonthlyUsage, UsageDaily
from chat import services as chat_services
from chat.frames import FRAME_TYPES
from chat.models import AIThread, Message
from ontology import invitations, services, tokens
from ontology.models import ApiToken, Connection, Event, Group, Membership, Thing
from ontology.scoping import group_scope
from tests.conftest import make_tenant, make_user


class Who(StrEnum):
    ANYONE = "anyone, signed in or not"
    SIGNED_IN = "any signed-in user (what it shows is the active group's)"
    MEMBER = "members of the object's group"
    MANAGER = "owners and admins of the group"
    THREAD_READER = "the thread's author; the group's owners and admins read it"
    THREAD_AUTHOR = "the thread's author only; the group's owners and admins get 403"
    TOKEN_HOLDER = "the token's own user; the group's owners and admins"
    SUPERUSER = "platform superusers"
    ADMIN_SITE = "staff; each model admin shows only the rows of the user's own groups"
    TOKEN_MANAGER = "an API token of the group's owners and admins; its members get 403"
    TOKEN = "a bearer API token of the group, with the route's scope (tests/api)"


@dataclass(frozen=True)
class Route:
    who: Who
    method: str = "GET"
    object: str | None = None  # which of the world's objects the URL names


ROUTES: dict[str, Route] = {
    "login": Route(Who.ANYONE),
    "logout": Route(Who.ANYONE, "POST"),
    "healthz": Route(Who.ANYONE),
    "home": Route(Who.SIGNED_IN),
    "switch-group": Route(Who.SIGNED_IN, "POST"),  # only to a group of one's own (tested)
    "thread-list": Route(Who.SIGNED_IN),
    "thread-new": Route(Who.SIGNED_IN, "POST"),  # only with an agent of the active group
    "thread-detail": Route(Who.THREAD_READER, object="thread"),
    "thread-rename": Route(Who.THREAD_AUTHOR, "POST", "thread"),
    "thread-attach": Route(Who.THREAD_AUTHOR, "POST", "thread"),
    "thread-path": Route(Who.THREAD_READER, object="thread"),
    "thread-delete": Route(Who.THREAD_AUTHOR, "POST", "thread"),  # GET: its confirmation page
    "thread-archive": Route(Who.THREAD_AUTHOR, "POST", "thread"),
    "thread-unarchive": Route(Who.THREAD_AUTHOR, "POST", "thread"),
    "thread-pin": Route(Who.THREAD_AUTHOR, "POST", "thread"),
    "thread-unpin": Route(Who.THREAD_AUTHOR, "POST", "thread"),
    "thread-export-md": Route(Who.THREAD_READER, object="thread"),
    "thread-export-json": Route(Who.THREAD_READER, object="thread"),
    "thread-share": Route(Who.THREAD_AUTHOR, "POST", "thread"),
    "thread-share-revoke": Route(Who.THREAD_AUTHOR, "POST", "thread"),
    "shared-thread": Route(Who.MEMBER, object="share"),  # a live link; revoked is missing
    "message-fragment": Route(Who.THREAD_READER, object="answer"),
    "message-feedback": Route(Who.THREAD_AUTHOR, "POST", "answer"),
    "knowledge-list": Route(Who.SIGNED_IN),
    "knowledge-status": Route(Who.SIGNED_IN),
    "knowledge-model": Route(Who.MANAGER, "POST"),
    "knowledge-source": Route(Who.MEMBER, object="source"),
    "knowledge-source-delete": Route(Who.MANAGER, "POST", "source"),
    "knowledge-source-retry": Route(Who.MANAGER, "POST", "source"),
    "knowledge-detail": Route(Who.MEMBER, object="chunk"),  # where a citation [n] leads
    "billing:usage": Route(Who.MANAGER),
    "billing:calls": Route(Who.MANAGER),
    "billing:ledger-csv": Route(Who.MANAGER),
    "billing:statement-csv": Route(Who.MANAGER),
    "billing:platform": Route(Who.SUPERUSER),
    "audit": Route(Who.MANAGER),
    "audit-export": Route(Who.MANAGER),
    "tokens": Route(Who.SIGNED_IN),  # one's own tokens; owners and admins see the group's
    "token-revoke": Route(Who.TOKEN_HOLDER, "POST", "token"),
    # People: the Members page, invitations, one's own account.
    "members": Route(Who.MANAGER),
    "member-invite": Route(Who.MANAGER, "POST"),
    "member-role": Route(Who.MANAGER, "POST", "membership"),
    "member-remove": Route(Who.MANAGER, "POST", "membership"),
    "invitation-resend": Route(Who.MANAGER, "POST", "invitation"),
    "invitation-revoke": Route(Who.MANAGER, "POST", "invitation"),
    "invitation": Route(Who.ANYONE),  # whoever holds the link's secret (tests/ontology)
    "profile": Route(Who.SIGNED_IN),
    "theme-set": Route(Who.SIGNED_IN, "POST"),
    "sessions-end": Route(Who.SIGNED_IN, "POST"),
    "password-change": Route(Who.SIGNED_IN),
    "password_reset": Route(Who.ANYONE),
    "password_reset_done": Route(Who.ANYONE),
    "password_reset_confirm": Route(Who.ANYONE),  # with a valid uid and token only
    "password_reset_complete": Route(Who.ANYONE),
    "admin": Route(Who.ADMIN_SITE),  # every pattern under /admin/ (see the admin tests)
    # The JSON API (/api/v1/) answers tokens, never sessions, so the session visitors above
    # do not fit its routes: object=None here, and tests/api/test_rest.py asks each thread
    # route for another tenant's and a colleague's thread, as a missing one (404 alike).
    "api:agents": Route(Who.TOKEN),
    "api:threads": Route(Who.TOKEN),  # POST: with an agent of the token's group only
    "api:thread": Route(Who.TOKEN),  # as THREAD_READER
    "api:messages": Route(Who.TOKEN),  # GET as THREAD_READER, POST as THREAD_AUTHOR
    "api:stop": Route(Who.TOKEN, "POST"),  # as THREAD_AUTHOR
    "api:run-events": Route(Who.TOKEN),  # as THREAD_READER
    "api:usage": Route(Who.TOKEN_MANAGER),
    "api:openapi": Route(Who.ANYONE),
    # OpenAI-compatible: another tenant's model is a 404 like a missing one (tests/api).
    "openai:models": Route(Who.TOKEN),
    "openai:model": Route(Who.TOKEN),
    "openai:chat-completions": Route(Who.TOKEN, "POST"),
    "openai:embeddings": Route(Who.TOKEN, "POST"),
}

SOCKET_ACTIONS: dict[str, Who] = {
    "connect": Who.THREAD_READER,
    "stream.resume": Who.THREAD_READER,
    "message.send": Who.THREAD_AUTHOR,
    "message.regenerate": Who.THREAD_AUTHOR,
    "message.edit": Who.THREAD_AUTHOR,
    "branch.switch": Who.THREAD_AUTHOR,
    "run.stop": Who.THREAD_AUTHOR,
}

LOGIN = resolve_url(settings.LOGIN_URL)
VISITORS = ["anonymous", "author", "colleague", "admin", "owner", "other_owner", "other_member"]
MISSING_IDS = {
    "thread": 999_999,
    "answer": uuid.UUID(int=1),
    "source": 999_999,
    "chunk": 999_999,
    "token": 999_999,
    "membership": 999_999,
    "invitation": 999_999,
    "share": "no-such-share-link-token-0000000",
}


def route_keys(patterns=None, namespace: str = "", prefix: str = ""):
    """(key, pattern) of every URL the resolver knows: its name, or "admin" under /admin/."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        text = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
            yield from route_keys(pattern.url_patterns, inner, text)
        elif isinstance(pattern, URLPattern):
            if text.startswith("admin/"):
                yield "admin", text
            else:
                yield (namespace + pattern.name) if pattern.name else text, text


def test_every_route_and_frame_says_who_may_reach_it():
    known = {key for key, _ in route_keys()}
    assert known - ROUTES.keys() == set(), "add the new routes to ROUTES, saying who may see them"
    assert ROUTES.keys() - known == set(), "ROUTES names routes that no longer exist"
    assert SOCKET_ACTIONS.keys() - {"connect"} == FRAME_TYPES.keys()


# --- the world: tenant A with an author, a colleague, an admin and an owner; tenant B --------


@dataclass
class World:
    group: Group
    people: dict[str, object]
    objects: dict[str, object]
    other_group: Group
    rows: dict[type, object]  # one tenant-A row per model the admin shows


def build_world() -> World:
    alpha, bravo = make_tenant("alpha"), make_tenant("bravo")
    colleague = make_user("colleague@alpha.example")
    manager = make_user("admin@alpha.example", staff=True)
    for user, role in ((colleague, Membership.Role.MEMBER), (manager, Membership.Role.ADMIN)):
        services.membership_create(group=alpha.group, user=user, role=role, actor=alpha.owner)
    people = {
        "author": alpha.member,
        "colleague": colleague,
        "admin": manager,
        "owner": alpha.owner,
        "other_owner": bravo.owner,
        "other_member": bravo.member,
    }
    group = alpha.group
    connection = services.connection_create(
        group=group,
        type="interacts_with",
        actor=alpha.owner,
        from_user=alpha.member,
        to_thing=alpha.agent,
    )
    with group_scope(group):
        thread = chat_services.thread_create(group=group, agent=alpha.agent, user=alpha.member)
        chat_services.message_create_user(thread=thread, user=alpha.member, content="Hi?")
        answer = chat_services.assistant_message_start(
            thread=thread, run_id=uuid.uuid4(), message_id=uuid.uuid4()
        )
        chat_services.assistant_message_finish(
            message=answer,
            status=Message.Status.COMPLETE,
            content="Hello.",
            actor=alpha.member,
            tool_calls=[],
            sources=[],
            usage={},
        )
        source = KnowledgeSource.objects.create(
            group=group,
            kind="text",
            title="Handbook",
            content_hash="0" * 64,
            status=KnowledgeSource.Status.READY,
            chunk_count=1,
        )
        chunk = Knowledge.objects.create(
            group=group, source=source, title="Handbook", content="Refunds take 14 days."
        )
        token, _ = tokens.token_create(
            group=group, user=alpha.member, name="CI bot", scopes=["read"], actor=alpha.member
        )
        share = chat_services.thread_share(thread=thread, actor=alpha.member)
        today = timezone.localdate()
        rows = {
            ApiToken: token,
            Group: group,
            Membership: Membership.objects.get(group=group, user=colleague),
            Agent: alpha.agent,
            Thing: services.thing_create(
                group=group,
                type=Thing.Type.TASK,
                name="Call back",
                properties={"priority": "high"},
                actor=alpha.owner,
            ),
            Connection: connection,
            Event: Event.objects.filter(group=group).first(),
            AIThread: thread,
            KnowledgeSource: source,
            Knowledge: chunk,
            ProviderCredential: ProviderCredential.objects.create(
                group=group, provider="openai", encrypted_api_key="x", key_hint="abcd"
            ),
            AICall: AICall.objects.create(
                id=uuid.uuid4(), group=group, provider="openai", model="gpt-4o-mini", status="ok"
            ),
            UsageDaily: UsageDaily.objects.create(
                group=group, day=today, provider="openai", model="gpt-4o-mini"
            ),
            MonthlyUsage: MonthlyUsage.objects.create(group=group, month=today.replace(day=1)),
            BudgetReservation: BudgetReservation.objects.create(
                group=group, cost=1, tokens=1, expires_at=timezone.now()
            ),
        }
    objects = {
        "thread": thread,
        "answer": answer,
        "source": source,
        "chunk": chunk,
        "token": token,
        "share": share.token,
        "membership": rows[Membership],
        "invitation": invitations.invitation_create(
            group=group,
            email="newcomer@alpha.example",
            role=Membership.Role.MEMBER,
            actor=alpha.owner,
            link_base="http://testserver/",
        ),
    }
    return World(group, people, objects, other_group=bravo.group, rows=rows)


@pytest.fixture
def world(db, clear_cache) -> World:
    return build_world()


def client_for(world: World, visitor: str) -> Client:
    client = Client()
    if visitor != "anonymous":
        client.force_login(world.people[visitor])
    return client


def url_for(name: str, route: Route, objects: dict) -> str:
    if route.object is None:
        return reverse(name)
    thing = objects[route.object]
    if route.object == "answer":
        thread_id = getattr(objects["thread"], "pk", objects["thread"])
        return reverse(name, args=[thread_id, getattr(thing, "pk", thing)])
    return reverse(name, args=[getattr(thing, "pk", thing)])


def request(client: Client, method: str, url: str):
    return client.post(url) if method == "POST" else client.get(url)


def expected(route: Route, visitor: str) -> str:
    """What the visitor should get: "ok", "login", "hidden" (as if missing) or "refused"."""
    if visitor == "anonymous":
        return "ok" if route.who == Who.ANYONE else "login"
    if visitor.startswith("other_"):
        return "hidden"  # every object of the world is tenant A's
    allowed = {
        Who.MEMBER: {"author", "colleague", "admin", "owner"},
        Who.MANAGER: {"admin", "owner"},
        Who.THREAD_READER: {"author", "admin", "owner"},
        Who.THREAD_AUTHOR: {"author"},
        Who.TOKEN_HOLDER: {"author", "admin", "owner"},
    }[route.who]
    if visitor in allowed:
        return "ok"
    if route.who == Who.THREAD_AUTHOR and visitor in ("admin", "owner"):
        return "refused"  # they read the thread, so its existence is no secret
    if route.who == Who.MANAGER:
        return "refused"  # members read what managers change
    return "hidden"


PER_REQUEST = re.compile(rb'name="(csrfmiddlewaretoken|next)" value="[^"]*"')


def page_text(response) -> bytes:
    """A response's body, but for what differs with every request anyway: error pages
    carry the site's header, whose forms hold a CSRF token masked afresh for every
    response and the path asked for (to come back to), which the asker knows."""
    return PER_REQUEST.sub(rb'name="\1" value=""', response.content)


OBJECT_ROUTES = [(name, route) for name, route in ROUTES.items() if route.object]


@pytest.mark.parametrize("visitor", VISITORS)
@pytest.mark.parametrize(("name", "route"), OBJECT_ROUTES, ids=[n for n, _ in OBJECT_ROUTES])
def test_each_object_route_shows_its_object_only_to_whom_it_says(world, name, route, visitor):
    client = client_for(world, visitor)
    url = url_for(name, route, world.objects)
    response = request(client, route.method, url)
    outcome = expected(route, visitor)
    if outcome == "login":
        assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    elif outcome == "ok":
        assert response.status_code in (200, 302), (name, visitor, response.status_code)
        if response.status_code == 302:
            assert not response["Location"].startswith(LOGIN)
    elif outcome == "refused":
        assert response.status_code == 403
    else:  # exactly what a missing object gets (a 404, or a 403 for any id at all)
        missing = request(client, route.method, url_for(name, route, MISSING_IDS))
        assert response.status_code in (403, 404)
        assert (response.status_code, page_text(response)) == (
            missing.status_code,
            page_text(missing),
        )


PAGE_ROUTES = [
    (name, route)
    for name, route in ROUTES.items()
    if not route.object and route.who in (Who.MANAGER, Who.SUPERUSER) and route.method == "GET"
]


@pytest.mark.parametrize("visitor", ["anonymous", "author", "admin", "owner", "superuser"])
@pytest.mark.parametrize(("name", "route"), PAGE_ROUTES, ids=[n for n, _ in PAGE_ROUTES])
def test_manager_and_platform_pages_open_only_for_them(world, name, route, visitor):
    if visitor == "superuser":
        world.people["superuser"] = make_user("root@parley.example", superuser=True)
    response = client_for(world, visitor).get(reverse(name))
    if visitor == "anonymous":
        assert response.status_code == 302
        return
    may = visitor == "superuser" or (route.who == Who.MANAGER and visitor in ("admin", "owner"))
    if may and not (visitor == "superuser" and route.who == Who.MANAGER):
        assert response.status_code == 200, (name, visitor)
    elif not may:
        assert response.status_code in (403, 404), (name, visitor)


def test_switching_to_another_tenants_group_is_a_404_and_changes_nothing(world):
    client = client_for(world, "author")
    switch = client.post(reverse("switch-group"), {"group": world.other_group.pk})
    assert switch.status_code == 404
    assert client.get(reverse("thread-list")).context["request"].group == world.group


# --- the admin ------------------------------------------------------------------------------

ADMIN_MODELS = sorted(admin.site._registry, key=lambda model: model._meta.label)


def admin_url(model, view: str, pk) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=[pk])


def missing_pk(model):
    return uuid.UUID(int=1) if model._meta.pk.get_internal_type() == "UUIDField" else 999_999


@pytest.mark.parametrize("model", ADMIN_MODELS, ids=[m._meta.label for m in ADMIN_MODELS])
def test_each_admin_object_page_is_hidden_from_other_tenants_like_a_missing_one(world, model):
    concrete = model._meta.concrete_model
    tenant_owned = concrete is Group or any(
        field.name == "group" and field.related_model is Group for field in concrete._meta.fields
    )
    if not tenant_owned:  # a platform table (users, plans, prices): superusers only
        client = client_for(world, "owner")
        response = client.get(
            reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        )
        assert response.status_code == 403
        return
    assert model in world.rows, f"add a tenant-A row of {model.__name__} to build_world()"
    row = world.rows[model]
    for view in ("change", "history", "delete"):
        url = admin_url(model, view, row.pk)
        assert client_for(world, "anonymous").get(url).status_code == 302
        assert client_for(world, "author").get(url).status_code == 302  # not staff: the login
        stranger = client_for(world, "other_owner")
        seen, missing = stranger.get(url), stranger.get(admin_url(model, view, missing_pk(model)))
        assert seen.status_code in (302, 404)
        assert (seen.status_code, seen.get("Location")) == (
            missing.status_code,
            missing.get("Location"),
        )
    assert client_for(world, "owner").get(admin_url(model, "change", row.pk)).status_code == 200


def test_view_on_site_hides_another_tenants_thread_like_a_missing_one(world):
    thread = world.objects["thread"]
    content_type = ContentType.objects.get_for_model(AIThread)
    stranger = client_for(world, "other_owner")
    seen = stranger.get(reverse("admin:view_on_site", args=[content_type.pk, thread.pk]))
    missing = stranger.get(reverse("admin:view_on_site", args=[content_type.pk, 999_999]))
    assert seen.status_code == missing.status_code == 404


# --- the socket -----------------------------------------------------------------------------


async def socket_for(world: World, visitor: str, thread_id: int):
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if visitor != "anonymous":
        client = await database_sync_to_async(client_for)(world, visitor)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    from config.asgi import application

    tab = WebsocketCommunicator(application, f"/ws/threads/{thread_id}/", headers)
    await tab.connect(timeout=10)
    return tab


FRAMES = {
    "stream.resume": {"type": "stream.resume", "after_seq": 0},
    "message.send": {"type": "message.send", "content": "Mine now?"},
    "message.regenerate": {"type": "message.regenerate", "message_id": ""},
    "message.edit": {"type": "message.edit", "message_id": "", "content": "Mine now?"},
    "branch.switch": {"type": "branch.switch", "message_id": ""},
    "run.stop": {"type": "run.stop"},
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_runs", "thread_connections", "clear_cache")
@pytest.mark.parametrize("visitor", VISITORS)
async def test_each_socket_action_is_answered_as_the_matrix_says(visitor):
    world = await database_sync_to_async(build_world)()
    thread, answer = world.objects["thread"], world.objects["answer"]
    tab = await socket_for(world, visitor, thread.pk)
    outcome = expected(Route(SOCKET_ACTIONS["connect"]), visitor)
    if outcome != "ok":
        close = await tab.receive_output(timeout=10)
        missing = await socket_for(world, visitor, 999_999)
        assert close == await missing.receive_output(timeout=10)
        assert close["code"] == (4401 if visitor == "anonymous" else 4404)
        return
    writes = [action for action, who in SOCKET_ACTIONS.items() if who == Who.THREAD_AUTHOR]
    for action in writes:
        frame = {**FRAMES[action]}
        if action in ("message.regenerate", "message.edit", "branch.switch"):
            frame["message_id"] = str(answer.pk)
        if visitor != "author":
            await tab.send_to(text_data=json.dumps(frame))
            reply = await tab.receive_json_from(timeout=10)
            assert (reply["type"], reply["code"]) == ("error", "read_only"), action
    await tab.send_to(text_data=json.dumps(FRAMES["stream.resume"]))
    reply = await tab.receive_json_from(timeout=10)  # a thread with no run: nothing to replay
    assert reply == {"type": "stream.resumed", "last_seq": 0, "streaming": False}
    await tab.disconnect()

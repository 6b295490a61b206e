"""Conversations are private to the person who started them.

A colleague reaching a thread by its number gets exactly what a missing thread gets;
the group's owners and admins read every thread of the group, but write only in theirs.
"""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat import selectors
from chat import services as chat_services
from chat.models import AIThread, Message
from ontology import services
from ontology.models import Membership
from ontology.scoping import group_scope
from tests.chat.test_views import conversation
from tests.conftest import make_user
from tests.test_isolation_matrix import page_text

pytestmark = pytest.mark.django_db

MISSING = 999_999


@pytest.fixture
def colleague(tenant_a):
    user = make_user("colleague@alpha.example")
    services.membership_create(
        group=tenant_a.group, user=user, role=Membership.Role.MEMBER, actor=tenant_a.owner
    )
    return user


def reads(client, thread, answer) -> dict[str, int]:
    """Status of every read path that names the thread or its answer."""
    return {
        "page": client.get(reverse("thread-detail", args=[thread.pk])).status_code,
        "fragment": client.get(
            reverse("message-fragment", args=[thread.pk, answer.pk])
        ).status_code,
    }


def writes(client, thread, answer) -> dict[str, int]:
    return {
        "rename": client.post(
            reverse("thread-rename", args=[thread.pk]), {"title": "Mine now"}
        ).status_code,
        "feedback": client.post(
            reverse("message-feedback", args=[thread.pk, answer.pk]), {"feedback": "down"}
        ).status_code,
    }


def test_a_colleagues_thread_looks_exactly_like_a_missing_one(client, tenant_a, colleague):
    thread, answer = conversation(tenant_a)  # the member's
    client.force_login(colleague)
    missing = client.get(reverse("thread-detail", args=[MISSING]))
    seen = client.get(reverse("thread-detail", args=[thread.pk]))
    assert (seen.status_code, page_text(seen)) == (404, page_text(missing))
    assert reads(client, thread, answer) == {"page": 404, "fragment": 404}
    assert writes(client, thread, answer) == {"rename": 404, "feedback": 404}
    with group_scope(tenant_a.group):
        thread.refresh_from_db()
        answer.refresh_from_db()
    assert (thread.title, answer.feedback) == ("", "")
    everyone = client.get(reverse("thread-list"), {"all": "1", "q": "refunds"})
    assert thread.get_absolute_url() not in everyone.content.decode()


@pytest.mark.parametrize("role", [Membership.Role.OWNER, Membership.Role.ADMIN])
def test_owners_and_admins_read_a_members_thread_but_do_not_write_in_it(client, tenant_a, role):
    thread, answer = conversation(tenant_a)
    reader = tenant_a.owner
    if role == Membership.Role.ADMIN:
        reader = make_user("admin@alpha.example")
        services.membership_create(
            group=tenant_a.group, user=reader, role=role, actor=tenant_a.owner
        )
    client.force_login(reader)
    assert reads(client, thread, answer) == {"page": 200, "fragment": 200}
    page = client.get(reverse("thread-detail", args=[thread.pk])).content.decode()
    assert "only they can write in it" in page
    assert 'id="composer" class="composer" autocomplete="off" novalidate hidden' in page
    assert "Regenerate" not in page and "message-feedback" not in page and "Rename" not in page
    assert writes(client, thread, answer) == {"rename": 403, "feedback": 403}
    with group_scope(tenant_a.group):
        thread.refresh_from_db()
        answer.refresh_from_db()
    assert (thread.title, answer.feedback) == ("", "")


def test_the_author_still_writes_in_their_own_thread(client, tenant_a):
    thread, answer = conversation(tenant_a)
    client.force_login(tenant_a.member)
    assert reads(client, thread, answer) == {"page": 200, "fragment": 200}
    assert writes(client, thread, answer) == {"rename": 302, "feedback": 302}


def test_search_finds_only_what_the_user_may_read(client, tenant_a, colleague):
    conversation(tenant_a, question="Where is the refund form?")
    client.force_login(colleague)
    for wanted in ({"q": "refund"}, {"q": "refund", "all": "1"}):
        listed = client.get(reverse("thread-list"), wanted)
        assert listed.context["page"].paginator.count == 0


def test_thread_for_member_is_one_query_whatever_the_number_of_groups(tenant_a, tenant_b):
    thread, _ = conversation(tenant_a)
    for slug in ("c1", "c2", "c3"):
        group = services.group_create(name=slug, slug=slug, actor=None, owner=tenant_a.owner)
        services.membership_create(
            group=group, user=tenant_a.member, role=Membership.Role.MEMBER, actor=tenant_a.owner
        )
    with CaptureQueriesContext(connection) as queries:
        group, found = selectors.thread_for_member(user=tenant_a.member, thread_id=thread.pk)
    assert len(queries) == 1
    assert (group.pk, found.pk, found.group.role) == (
        tenant_a.group.pk,
        thread.pk,
        Membership.Role.MEMBER,
    )
    assert selectors.thread_for_member(user=tenant_b.owner, thread_id=thread.pk) is None
    owner_view = selectors.thread_for_member(user=tenant_a.owner, thread_id=thread.pk)
    assert owner_view is not None and owner_view[0].role == Membership.Role.OWNER


def test_a_thread_whose_author_left_is_read_only_for_everyone(tenant_a):
    with group_scope(tenant_a.group):
        thread = AIThread.objects.create(group=tenant_a.group, agent=tenant_a.agent, user=None)
        Message.objects.create(
            group=tenant_a.group, thread=thread, role="user", content="hi", id=uuid.uuid4()
        )
    _, found = selectors.thread_for_member(user=tenant_a.owner, thread_id=thread.pk)
    assert not selectors.may_write(thread=found, user=tenant_a.owner)
    assert selectors.thread_for_member(user=tenant_a.member, thread_id=thread.pk) is None


def test_a_socket_reads_its_session_from_the_cache_and_opens_in_one_query(client, tenant_a):
    from importlib import import_module

    from channels.auth import UserLazyObject
    from django.conf import settings

    from chat.consumers import _who_and_where

    thread, _ = conversation(tenant_a)
    client.force_login(tenant_a.member)
    session = import_module(settings.SESSION_ENGINE).SessionStore(
        client.cookies[settings.SESSION_COOKIE_NAME].value
    )
    scope = {"session": session, "user": UserLazyObject(), "cookies": {}}
    with CaptureQueriesContext(connection) as queries:
        user, (group, found), streaming = _who_and_where(scope, thread.pk)
    assert (user.pk, group.pk, found.pk, streaming) == (
        tenant_a.member.pk,
        tenant_a.group.pk,
        thread.pk,
        None,
    )
    assert not [q for q in queries if "django_session" in q["sql"]]
    assert len(queries) == 1  # the user, the thread with its group, any answer streaming


def test_a_socket_open_sees_the_answer_streaming_while_its_heartbeat_lives(client, tenant_a):
    from datetime import timedelta

    from channels.auth import UserLazyObject
    from django.utils import timezone

    from chat.consumers import _who_and_where
    from chat.runs import STALE_AFTER

    thread, _ = conversation(tenant_a)
    run_id = uuid.uuid4()
    with group_scope(tenant_a.group):
        streaming = chat_services.assistant_message_start(
            thread=thread, run_id=run_id, message_id=uuid.uuid4()
        )
    client.force_login(tenant_a.member)

    def opened():
        scope = {"session": client.session, "user": UserLazyObject(), "cookies": {}}
        return _who_and_where(scope, thread.pk)[2]

    assert opened() == str(run_id)
    with group_scope(tenant_a.group):
        Message.objects.filter(pk=streaming.pk).update(
            updated_at=timezone.now() - STALE_AFTER - timedelta(seconds=1)
        )
    assert opened() is None  # a stale heartbeat: the run's process is gone

"""A browser's socket opening (chat.socket_open): the session's user and the thread it
names in one statement, with Django's checks of the session kept (the user active, the
session's hash still matching) and the membership join as the tenant check."""

from importlib import import_module

import pytest
from channels.auth import UserLazyObject
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from chat import selectors
from chat.consumers import _who_and_where, _who_and_where_together
from ontology.models import Membership, User
from tests.api.test_token_cache import redis_calls
from tests.chat.test_privacy import colleague  # noqa: F401 - a fixture
from tests.chat.test_views import conversation

pytestmark = pytest.mark.django_db


def session_of(client, user):
    client.force_login(user)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    return import_module(settings.SESSION_ENGINE).SessionStore(key)


def opened(session, thread_id):
    """(the user's pk or None, the group's pk, the reader's role, the thread's pk) as the
    socket's open sees them, and the number of queries it took."""
    scope = {"session": session, "user": UserLazyObject(), "cookies": {}}
    with CaptureQueriesContext(connection) as queries:
        user, access, _ = _who_and_where(scope, thread_id)
    signed_in = user.pk if user.is_authenticated else None
    if access is None:
        return (signed_in, None, None, None), len(queries)
    group, thread = access
    return (signed_in, group.pk, group.role, thread.pk), len(queries)


def test_the_author_the_groups_owner_and_nobody_else_read_a_thread(
    client,
    tenant_a,
    tenant_b,
    colleague,  # noqa: F811
):
    thread, _ = conversation(tenant_a)
    group = tenant_a.group.pk
    member, owner = tenant_a.member, tenant_a.owner
    assert opened(session_of(client, member), thread.pk) == (
        (member.pk, group, Membership.Role.MEMBER, thread.pk),
        1,
    )
    assert opened(session_of(client, owner), thread.pk) == (
        (owner.pk, group, Membership.Role.OWNER, thread.pk),
        1,
    )
    # Signed in, and told "not found" (4404), not "not signed in" (4401): a colleague of
    # the same group, another tenant's owner, a thread that does not exist.
    assert opened(session_of(client, colleague), thread.pk) == ((colleague.pk, None, None, None), 1)
    rival = tenant_b.owner
    assert opened(session_of(client, rival), thread.pk) == ((rival.pk, None, None, None), 1)
    assert opened(session_of(client, member), 999_999) == ((member.pk, None, None, None), 1)
    # The same answers as the ORM's rule, which programs' sockets use (its twin).
    for visitor in (member, owner, colleague, rival):
        orm = selectors.thread_for_member(user=visitor, thread_id=thread.pk)
        sql = opened(session_of(client, visitor), thread.pk)[0][1:3]
        assert sql == ((orm[0].pk, orm[0].role) if orm else (None, None))


def test_a_session_no_longer_valid_signs_nobody_in(client, tenant_a):
    thread, _ = conversation(tenant_a)
    member = tenant_a.member
    after_password_change = session_of(client, member)
    key = after_password_change.session_key
    member.set_password("a new one")
    member.save()
    assert opened(after_password_change, thread.pk)[0] == (None, None, None, None)
    # Flushed, as Django's get_user does: the key no longer names a stored session.
    store = import_module(settings.SESSION_ENGINE).SessionStore
    assert store().exists(key) is False and store(key).load() == {}

    signed_out_everywhere = session_of(client, member)
    User.objects.filter(pk=member.pk).update(session_generation=5)
    assert opened(signed_out_everywhere, thread.pk)[0] == (None, None, None, None)


def test_an_inactive_or_deleted_user_is_nobody(client, tenant_a, colleague):  # noqa: F811
    thread, _ = conversation(tenant_a)
    inactive = session_of(client, tenant_a.member)
    User.objects.filter(pk=tenant_a.member.pk).update(is_active=False)
    assert opened(inactive, thread.pk)[0] == (None, None, None, None)

    # A session naming a user no longer there (users are kept for the audit; a session
    # copied from another database would do this).
    nobody_there = session_of(client, colleague)
    nobody_there[SESSION_KEY] = "987654321"
    nobody_there.save()
    assert opened(nobody_there, thread.pk) == ((None, None, None, None), 1)


def test_a_session_with_nobody_in_it_is_anonymous(tenant_a):
    thread, _ = conversation(tenant_a)
    session = import_module(settings.SESSION_ENGINE).SessionStore()
    assert opened(session, thread.pk) == ((None, None, None, None), 0)


def test_sockets_opening_together_read_their_sessions_once_and_who_and_where_in_one_statement(
    tenant_a,
    tenant_b,
    colleague,  # noqa: F811
):
    """Sockets sharing a trip (chat.consumers._opening) make one cache read for all their
    sessions and one statement for all their users and threads; each is answered for its
    own session, as it would be alone. (Each session signed in by a client of its own: a
    client signing in again ends its last session.)"""
    thread, _ = conversation(tenant_a)
    member, owner, rival = tenant_a.member, tenant_a.owner, tenant_b.owner
    store = import_module(settings.SESSION_ENGINE).SessionStore
    signed_out = session_of(Client(), rival)
    sessions = [
        session_of(Client(), member),
        session_of(Client(), owner),
        session_of(Client(), colleague),  # signed in; not theirs to read
        signed_out,  # another tenant's owner, since signed out everywhere
        store(),  # nobody signed in
        session_of(Client(), member),
    ]
    sessions.append(store(sessions[0].session_key))  # the first, opened in a second tab
    User.objects.filter(pk=rival.pk).update(session_generation=5)
    signed_out_key = signed_out.session_key
    scopes = [{"session": s, "user": UserLazyObject(), "cookies": {}} for s in sessions]
    before = redis_calls()
    with CaptureQueriesContext(connection) as queries:
        outcomes = _who_and_where_together([(scope, thread.pk) for scope in scopes])
    ran = {name: calls - before.get(name, 0) for name, calls in redis_calls().items()}
    # The sessions in one MGET, none on its own; the flushed one's delete. (Only the
    # commands a session read or delete uses: a Celery worker or daphne started by other
    # tests for the whole session may send others meanwhile.)
    reads = ("cmdstat_get", "cmdstat_mget", "cmdstat_del")
    assert {name: ran.get(name, 0) for name in reads} == {
        "cmdstat_get": 0,
        "cmdstat_mget": 1,
        "cmdstat_del": 1,
    }
    # who and where for all in one statement; the rest is the flushed session's delete
    sql = [query["sql"] for query in queries]
    assert "unnest" in sql[0] and all("django_session" in rest for rest in sql[1:])

    def seen(outcome) -> tuple:
        user, access, _ = outcome
        signed_in = user.pk if user.is_authenticated else None
        return (signed_in, access[1].pk if access else None)

    assert [seen(o) for o in outcomes] == [
        (member.pk, thread.pk),
        (owner.pk, thread.pk),
        (colleague.pk, None),
        (None, None),  # its session no longer valid: nobody, and flushed
        (None, None),
        (member.pk, thread.pk),
        (member.pk, thread.pk),
    ]
    assert store().exists(signed_out_key) is False

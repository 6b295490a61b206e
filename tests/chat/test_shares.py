"""Sharing a thread: a read-only link for the members of its group, revocable at once."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from chat import selectors
from chat import services as chat_services
from chat.models import ThreadShare
from ontology import services
from ontology.events import EventType
from ontology.models import Event, Membership
from ontology.scoping import group_scope
from tests.chat.test_views import conversation
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def shared(tenant, **kwargs):
    thread, _ = conversation(tenant, **kwargs)
    with group_scope(tenant.group):
        share = chat_services.thread_share(thread=thread, actor=thread.user)
    return thread, share


def colleague_of(tenant):
    colleague = make_user(f"colleague@{tenant.group.slug}.example")
    services.membership_create(
        group=tenant.group, user=colleague, role=Membership.Role.MEMBER, actor=tenant.owner
    )
    return colleague


def test_a_colleague_reads_the_shared_thread_but_not_the_thread_itself(client, tenant_a):
    thread, share = shared(tenant_a, title="Refunds", question="How long do refunds take?")
    client.force_login(colleague_of(tenant_a))

    page = client.get(share.get_absolute_url())

    assert page.status_code == 200
    body = page.content.decode()
    assert "Refunds" in body and "How long do refunds take?" in body
    assert "<strong>14 days</strong>" in body  # the answer, rendered and sanitised as usual
    assert "read-only" in body
    assert 'id="composer"' not in body and "/feedback/" not in body
    assert client.get(thread.get_absolute_url()).status_code == 404  # sharing opens the link only


def test_the_link_is_random_and_sharing_twice_gives_the_same_link(tenant_a):
    thread, share = shared(tenant_a)
    _, other_share = shared(tenant_a)
    assert len(share.token) >= 32 and share.token != other_share.token
    assert str(thread.pk) not in share.get_absolute_url()
    with group_scope(tenant_a.group):
        again = chat_services.thread_share(thread=thread, actor=tenant_a.member)
        assert again.pk == share.pk
        assert Event.objects.filter(type=EventType.THREAD_SHARED).count() == 2  # one per thread


def test_revoking_stops_the_link_at_once_and_sharing_again_makes_a_new_one(client, tenant_a):
    thread, share = shared(tenant_a)
    client.force_login(colleague_of(tenant_a))
    assert client.get(share.get_absolute_url()).status_code == 200

    author = client.__class__()
    author.force_login(tenant_a.member)
    response = author.post(reverse("thread-share-revoke", args=[thread.pk]), follow=True)
    assert "The link no longer opens this conversation." in response.content.decode()

    revoked = client.get(share.get_absolute_url())
    missing = client.get(reverse("shared-thread", args=["x" * 32]))
    assert revoked.status_code == missing.status_code == 404
    author.post(reverse("thread-share", args=[thread.pk]))
    with group_scope(tenant_a.group):
        fresh = selectors.live_share(thread=thread)
        types = list(
            Event.objects.filter(type__in=[EventType.THREAD_SHARED, EventType.THREAD_SHARE_REVOKED])
            .order_by("pk")
            .values_list("type", flat=True)
        )
    assert fresh.token != share.token
    assert client.get(share.get_absolute_url()).status_code == 404  # the old copy stays dead
    assert client.get(fresh.get_absolute_url()).status_code == 200
    assert types == [
        EventType.THREAD_SHARED,
        EventType.THREAD_SHARE_REVOKED,
        EventType.THREAD_SHARED,
    ]


def test_another_groups_members_get_what_a_missing_link_gets(client, tenant_a, tenant_b):
    _, share = shared(tenant_a)
    for stranger in (tenant_b.owner, tenant_b.member):
        client.force_login(stranger)
        seen = client.get(share.get_absolute_url())
        missing = client.get(reverse("shared-thread", args=["y" * 32]))
        assert seen.status_code == missing.status_code == 404


def test_anonymous_visitors_are_sent_to_log_in_and_learn_nothing(client, tenant_a):
    _, share = shared(tenant_a)
    seen = client.get(share.get_absolute_url())
    missing = client.get(reverse("shared-thread", args=["z" * 32]))
    assert seen.status_code == missing.status_code == 302
    assert seen["Location"].startswith(reverse("login"))


def test_a_member_of_two_groups_opens_a_link_of_the_group_not_active(client, tenant_a, tenant_b):
    _, share = shared(tenant_a, title="Cross-team")
    both = make_user("both@example.com")
    for tenant in (tenant_b, tenant_a):  # tenant B first: the active group on log-in
        services.membership_create(
            group=tenant.group, user=both, role=Membership.Role.MEMBER, actor=tenant.owner
        )
    client.force_login(both)
    page = client.get(share.get_absolute_url())
    assert page.status_code == 200 and "Cross-team" in page.content.decode()


def test_someone_who_left_the_group_loses_the_link(client, tenant_a):
    _, share = shared(tenant_a)
    colleague = colleague_of(tenant_a)
    client.force_login(colleague)
    assert client.get(share.get_absolute_url()).status_code == 200
    with group_scope(tenant_a.group):
        membership = Membership.objects.get(user=colleague)
        services.membership_delete(membership=membership, actor=tenant_a.owner)
    assert client.get(share.get_absolute_url()).status_code == 404


def test_only_the_author_shares_or_revokes(client, tenant_a):
    thread, share = shared(tenant_a)
    client.force_login(tenant_a.owner)
    assert client.post(reverse("thread-share-revoke", args=[thread.pk])).status_code == 403
    assert client.post(reverse("thread-share", args=[thread.pk])).status_code == 403
    client.force_login(colleague_of(tenant_a))
    assert client.post(reverse("thread-share-revoke", args=[thread.pk])).status_code == 404
    assert client.get(share.get_absolute_url()).status_code == 200


def test_one_live_link_per_thread_is_a_database_rule(tenant_a):
    thread, _ = shared(tenant_a)
    with group_scope(tenant_a.group), pytest.raises(IntegrityError), transaction.atomic():
        ThreadShare.objects.create(group=tenant_a.group, thread=thread, token="another")


def test_deleting_the_thread_ends_its_link(client, tenant_a):
    thread, share = shared(tenant_a)
    with group_scope(tenant_a.group):
        chat_services.thread_delete(thread=thread, actor=tenant_a.member)
    client.force_login(colleague_of(tenant_a))
    assert client.get(share.get_absolute_url()).status_code == 404

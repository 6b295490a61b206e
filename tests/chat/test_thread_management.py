"""Managing threads: delete (and what it keeps for billing), archive, pin and export."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.urls import reverse

from agents.models import ToolCall
from billing.models import AICall
from chat import exports, selectors
from chat import services as chat_services
from chat.models import AIThread, Message, RunEvent, ThreadShare
from chat.runs import _lock_key
from ontology.events import EventType
from ontology.models import Event
from ontology.scoping import group_scope, scopes_disabled
from tests.chat.test_run_lock import claim_lock
from tests.chat.test_views import ANSWER, conversation

pytestmark = pytest.mark.django_db


def billed(tenant, thread, answer, *, cost: str) -> AICall:
    """A ledger row for the answer's run, as metering writes it."""
    with group_scope(tenant.group):
        return AICall.objects.create(
            id=uuid.uuid4(),
            group=tenant.group,
            user=thread.user,
            thread=thread,
            run_id=answer.run_id,
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=120,
            output_tokens=40,
            cost=Decimal(cost),
            status="ok",
        )


def logged(tenant, thread, answer) -> None:
    with group_scope(tenant.group):
        RunEvent.objects.create(
            group=tenant.group,
            thread=thread,
            run_id=answer.run_id,
            seq=1,
            type="token",
            payload={"type": "token", "seq": 1, "text": "Refunds"},
        )
        ToolCall.objects.create(
            group=tenant.group,
            call_id=f"call-{uuid.uuid4()}",
            run_id=answer.run_id,
            thread=thread,
            name="searchKnowledge",
            arguments={"query": "refund policy"},
            status=ToolCall.Status.OK,
            result={"passages": ["Refunds are paid within 14 days."]},
        )


# --- delete -----------------------------------------------------------------------------


def test_delete_removes_what_the_thread_said_and_keeps_the_ledger(client, tenant_a):
    thread, answer = conversation(tenant_a, title="Refunds")
    other, _ = conversation(tenant_a, title="Keep me")
    logged(tenant_a, thread, answer)
    call = billed(tenant_a, thread, answer, cost="0.00012345")
    with group_scope(tenant_a.group):
        chat_services.thread_share(thread=thread, actor=tenant_a.member)
    thread_id = thread.pk
    client.force_login(tenant_a.member)

    response = client.post(reverse("thread-delete", args=[thread_id]))

    assert response.status_code == 302 and response["Location"] == reverse("thread-list")
    with scopes_disabled():
        assert not AIThread.objects.filter(pk=thread_id).exists()
        assert not Message.objects.filter(thread_id=thread_id).exists()
        assert not RunEvent.objects.filter(thread_id=thread_id).exists()
        assert not ThreadShare.objects.filter(thread_id=thread_id).exists()
        assert not ToolCall.objects.filter(run_id=answer.run_id).exists()
        assert Message.objects.filter(thread=other).count() == 2  # only that thread
        kept = AICall.objects.get(pk=call.pk)
        event = Event.objects.get(type=EventType.THREAD_DELETED)
    # The charge stands as it was; the deletion's Event says which thread it belonged to.
    assert (kept.cost, kept.run_id, kept.thread_id) == (Decimal("0.00012345"), answer.run_id, None)
    assert (event.target_id, event.target_label, event.actor) == (
        str(thread_id),
        "Refunds",
        tenant_a.member,
    )
    assert event.metadata["ledger_call_ids"] == [str(call.pk)]
    assert event.metadata["ledger_cost"] == "0.00012345"
    assert (event.metadata["messages"], event.metadata["run_events"]) == (2, 1)
    listing = client.get(reverse("thread-list")).content.decode()
    assert "Deleted “Refunds”." in listing and "Keep me" in listing


def test_the_confirmation_page_asks_first_and_deletes_nothing(client, tenant_a):
    thread, _ = conversation(tenant_a, title="Refunds")
    client.force_login(tenant_a.member)
    page = client.get(reverse("thread-delete", args=[thread.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Delete “Refunds”?" in body and "2 messages" in body
    assert f'action="{reverse("thread-delete", args=[thread.pk])}"' in body
    with group_scope(tenant_a.group):
        assert AIThread.objects.filter(pk=thread.pk).exists()


def test_only_the_author_deletes_a_thread(client, tenant_a, tenant_b):
    thread, _ = conversation(tenant_a, title="Mine")
    client.force_login(tenant_a.owner)  # reads every thread of the group, writes none
    assert client.get(reverse("thread-delete", args=[thread.pk])).status_code == 403
    assert client.post(reverse("thread-delete", args=[thread.pk])).status_code == 403
    client.force_login(tenant_b.owner)
    assert client.post(reverse("thread-delete", args=[thread.pk])).status_code == 404
    with group_scope(tenant_a.group):
        assert AIThread.objects.filter(pk=thread.pk).exists()


def test_a_thread_that_is_answering_is_not_deleted(client, tenant_a):
    thread, _ = conversation(tenant_a, title="Busy")
    with group_scope(tenant_a.group):
        chat_services.message_create_user(thread=thread, user=tenant_a.member, content="More?")
        streaming = chat_services.assistant_message_start(
            thread=thread, run_id=uuid.uuid4(), message_id=uuid.uuid4()
        )
    client.force_login(tenant_a.member)
    response = client.post(reverse("thread-delete", args=[thread.pk]), follow=True)
    assert "An answer is still being written. Wait or stop it first." in response.content.decode()
    with group_scope(tenant_a.group):
        assert Message.objects.filter(pk=streaming.pk).exists()
        assert not Event.objects.filter(type=EventType.THREAD_DELETED).exists()


def test_a_run_that_holds_the_thread_before_its_answer_exists_also_refuses(tenant_a, clear_cache):
    thread, _ = conversation(tenant_a, title="Starting")
    # What a run on any process does first, before its answer row exists.
    assert claim_lock(thread.pk, f"{uuid.uuid4()} specific.control!abc")
    with group_scope(tenant_a.group), pytest.raises(ValidationError):
        chat_services.thread_delete(thread=thread, actor=tenant_a.member)
    cache.delete(_lock_key(thread.pk))
    with group_scope(tenant_a.group):
        chat_services.thread_delete(thread=thread, actor=tenant_a.member)
        assert not AIThread.objects.filter(pk=thread.pk).exists()


# --- archive and pin ----------------------------------------------------------------------


def titles(client, **params) -> list[str]:
    page = client.get(reverse("thread-list"), params).context["page"]
    return [thread.title for thread in page.object_list]


def test_archived_threads_leave_the_list_for_the_archived_view_and_come_back(client, tenant_a):
    old, _ = conversation(tenant_a, title="Old trip")
    conversation(tenant_a, title="Current")
    client.force_login(tenant_a.member)

    client.post(reverse("thread-archive", args=[old.pk]))
    client.post(reverse("thread-archive", args=[old.pk]))  # sent twice: one change

    assert titles(client) == ["Current"]
    assert titles(client, view="archived") == ["Old trip"]
    assert titles(client, view="archived", q="trip") == ["Old trip"]
    assert titles(client, q="trip") == []
    client.post(reverse("thread-unarchive", args=[old.pk]))
    assert titles(client, view="archived") == []
    assert set(titles(client)) == {"Old trip", "Current"}
    with group_scope(tenant_a.group):
        types = list(
            Event.objects.filter(target_id=str(old.pk), type__startswith="thread.")
            .order_by("pk")
            .values_list("type", flat=True)
        )
    assert types == [
        EventType.THREAD_CREATED,
        EventType.THREAD_ARCHIVED,
        EventType.THREAD_UNARCHIVED,
    ]


def test_pinned_threads_come_first_newest_pin_first(client, tenant_a):
    first, _ = conversation(tenant_a, title="First")
    second, _ = conversation(tenant_a, title="Second")
    conversation(tenant_a, title="Newest")
    client.force_login(tenant_a.member)
    assert titles(client) == ["Newest", "Second", "First"]

    client.post(reverse("thread-pin", args=[first.pk]))
    client.post(reverse("thread-pin", args=[second.pk]))
    assert titles(client) == ["Second", "First", "Newest"]
    page = client.get(reverse("thread-list")).content.decode()
    assert page.count('<span class="pin-mark">Pinned</span>') == 2

    client.post(reverse("thread-unpin", args=[second.pk]))
    assert titles(client) == ["First", "Newest", "Second"]
    with group_scope(tenant_a.group):
        assert Event.objects.filter(type=EventType.THREAD_PINNED).count() == 2
        assert Event.objects.filter(type=EventType.THREAD_UNPINNED).count() == 1


def test_filing_goes_back_to_the_list_it_came_from_and_never_off_site(client, tenant_a):
    thread, _ = conversation(tenant_a, title="Mine")
    client.force_login(tenant_a.member)
    back = client.post(reverse("thread-pin", args=[thread.pk]), {"next": "/threads/?q=Mine"})
    assert back["Location"] == "/threads/?q=Mine"
    away = client.post(reverse("thread-unpin", args=[thread.pk]), {"next": "https://evil.test/"})
    assert away["Location"] == thread.get_absolute_url()


def test_colleagues_threads_show_no_filing_buttons_to_a_manager(client, tenant_a):
    conversation(tenant_a, title="Member's")
    client.force_login(tenant_a.owner)
    page = client.get(reverse("thread-list"), {"all": "1"}).content.decode()
    assert "Member&#x27;s" in page or "Member's" in page
    assert "/pin/" not in page and "/archive/" not in page


# --- export -------------------------------------------------------------------------------


def test_json_export_has_every_visible_message_in_order_with_citations(client, tenant_a):
    thread, answer = conversation(tenant_a, title="Refunds: 14 days?")
    with group_scope(tenant_a.group):
        chat_services.message_replace(message=answer, actor=tenant_a.member)
        again = chat_services.assistant_message_start(
            thread=thread, run_id=uuid.uuid4(), message_id=uuid.uuid4()
        )
        chat_services.assistant_message_finish(
            message=again,
            status=Message.Status.STOPPED,
            content="Refunds take",
            actor=tenant_a.member,
            tool_calls=[],
            sources=[{"n": 1, "knowledge_id": 7, "title": "Policy", "content": "...", "score": 1}],
            usage={},
        )
    client.force_login(tenant_a.owner)  # a manager may read, so may export
    response = client.get(reverse("thread-export-json", args=[thread.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == (
        f'attachment; filename="refunds-14-days-{thread.pk}.json"'
    )
    document = json.loads(response.content)
    assert document["format"] == "parley.thread/1"
    assert document["thread"]["title"] == "Refunds: 14 days?"
    assert document["thread"]["agent"] == "Alpha Agent"
    messages = document["messages"]
    assert [(m["role"], m["status"], m["content"]) for m in messages] == [
        ("user", "complete", "How long do refunds take?"),
        ("assistant", "stopped", "Refunds take"),
    ]
    assert messages[1]["citations"] == [{"n": 1, "title": "Policy", "knowledge_id": 7}]
    assert messages[0]["created_at"] < messages[1]["created_at"]


def test_markdown_export_reads_as_the_conversation(client, tenant_a):
    thread, _ = conversation(tenant_a, title="Refunds")
    client.force_login(tenant_a.member)
    response = client.get(reverse("thread-export-md", args=[thread.pk]))
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="refunds-{thread.pk}.md"'
    text = response.content.decode()
    assert text.startswith("# Refunds\n\nWith Alpha Agent · started ")
    question = text.index("## User · ")
    answer = text.index("## Alpha Agent · ")
    assert question < text.index("How long do refunds take?") < answer
    assert ANSWER in text
    assert "Sources:\n\n1. Refund policy\n" in text


def test_export_file_names_are_safe_whatever_the_title(tenant_a):
    thread, _ = conversation(tenant_a, title='../../etc/passwd"; rm -rf / ')
    assert exports.export_filename(thread, "md") == f"etcpasswd-rm-rf-{thread.pk}.md"
    thread.title = "Über Straße 東京"
    assert exports.export_filename(thread, "json") == f"über-straße-東京-{thread.pk}.json"
    thread.title = "!!!"
    assert exports.export_filename(thread, "md") == f"conversation-{thread.pk}.md"


def test_a_unicode_title_downloads_under_its_own_name(client, tenant_a):
    thread, _ = conversation(tenant_a, title="Über Straße")
    client.force_login(tenant_a.member)
    response = client.get(reverse("thread-export-md", args=[thread.pk]))
    assert response["Content-Disposition"] == (
        f"attachment; filename*=utf-8''%C3%BCber-stra%C3%9Fe-{thread.pk}.md"
    )


def test_only_readers_export(client, tenant_a, tenant_b):
    thread, _ = conversation(tenant_a, title="Private")
    for stranger in (tenant_b.owner, tenant_b.member):
        client.force_login(stranger)
        assert client.get(reverse("thread-export-json", args=[thread.pk])).status_code == 404
    with group_scope(tenant_a.group):
        colleague_thread, _ = conversation(tenant_a, user=tenant_a.owner, title="Owner's")
    client.force_login(tenant_a.member)
    assert client.get(reverse("thread-export-md", args=[colleague_thread.pk])).status_code == 404


def test_the_thread_page_offers_the_actions_its_reader_may_take(client, tenant_a):
    thread, _ = conversation(tenant_a, title="Refunds")
    client.force_login(tenant_a.member)
    mine = client.get(reverse("thread-detail", args=[thread.pk])).content.decode()
    for url in ("thread-pin", "thread-archive", "thread-share", "thread-delete"):
        assert reverse(url, args=[thread.pk]) in mine, url
    client.force_login(tenant_a.owner)
    theirs = client.get(reverse("thread-detail", args=[thread.pk])).content.decode()
    assert reverse("thread-export-md", args=[thread.pk]) in theirs
    for url in ("thread-pin", "thread-archive", "thread-share", "thread-delete"):
        assert reverse(url, args=[thread.pk]) not in theirs, url
    assert selectors.live_share(thread=thread) is None

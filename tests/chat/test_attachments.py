"""Files attached in the chat box: thread-scoped knowledge. Found by searches from their
conversation only, never listed on the Knowledge page, shown to the thread's readers
only, refused by the same checks as any upload, deleted with the thread."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from agents import knowledge
from agents.knowledge.retrieval.search import search_chunks
from agents.models import Knowledge, KnowledgeSource
from chat import services as chat_services
from ontology import services
from ontology.models import Membership
from ontology.scoping import group_scope
from tests.conftest import make_tenant, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clear_cache")]

NOTES = b"# Trip notes\n\nThe offsite budget for the Lisbon trip is 4,200 euros per team.\n"


def upload(
    name: str = "notes.md", data: bytes = NOTES, kind: str = "text/markdown"
) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=kind)


@pytest.fixture
def world():
    alpha = make_tenant("alpha")
    admin = make_user("admin@alpha.example")
    colleague = make_user("colleague@alpha.example")
    services.membership_create(
        group=alpha.group, user=admin, role=Membership.Role.ADMIN, actor=alpha.owner
    )
    services.membership_create(group=alpha.group, user=colleague, actor=alpha.owner)
    with group_scope(alpha.group):
        mine = chat_services.thread_create(group=alpha.group, agent=alpha.agent, user=alpha.member)
        other = chat_services.thread_create(group=alpha.group, agent=alpha.agent, user=colleague)
    return alpha, admin, colleague, mine, other


def attach(group, thread, user) -> KnowledgeSource:
    [(source, created)] = knowledge.source_add_files(
        group=group, files=[upload()], actor=user, queue=False, thread_id=thread.pk
    )
    assert created
    knowledge.source_process(group=group, source_id=source.pk)
    source.refresh_from_db()
    return source


def found(group, thread_id) -> list[int]:
    hits = search_chunks(
        group=group, query="Lisbon offsite budget", top_k=5, mode="keyword", thread_id=thread_id
    )
    return [hit.source_id for hit in hits]


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_attachment_is_searched_from_its_conversation_only(world):
    alpha, _, _, mine, other = world
    source = attach(alpha.group, mine, alpha.member)
    assert source.status == KnowledgeSource.Status.READY and source.thread_id == mine.pk
    with group_scope(alpha.group):
        assert set(Knowledge.objects.filter(source=source).values_list("thread_id", flat=True)) == {
            mine.pk
        }
    assert found(alpha.group, mine.pk) == [source.pk]
    assert found(alpha.group, other.pk) == []  # another conversation of the same group
    assert found(alpha.group, None) == []  # the group's shared knowledge
    shared, _ = knowledge.source_add_text(
        group=alpha.group,
        title="Policy",
        text="The Lisbon offsite budget is set by finance.",
        actor=alpha.owner,
        queue=False,
    )
    knowledge.source_process(group=alpha.group, source_id=shared.pk)
    assert set(found(alpha.group, mine.pk)) == {source.pk, shared.pk}
    assert found(alpha.group, other.pk) == [shared.pk]


def test_the_same_file_attached_in_two_conversations_is_two_attachments(world):
    alpha, _, colleague, mine, other = world
    first = attach(alpha.group, mine, alpha.member)
    second = attach(alpha.group, other, colleague)
    assert first.pk != second.pk and second.thread_id == other.pk
    again = knowledge.source_add_files(
        group=alpha.group, files=[upload()], actor=alpha.member, queue=False, thread_id=mine.pk
    )
    assert again == [(first, False)]  # the same file twice in one conversation: kept once


def test_only_the_threads_readers_see_an_attachment_and_the_knowledge_page_lists_none(world):
    alpha, admin, colleague, mine, _ = world
    source = attach(alpha.group, mine, alpha.member)
    with group_scope(alpha.group):
        chunk = Knowledge.objects.get(source=source)
    passage = reverse("knowledge-detail", args=[chunk.pk])
    page = reverse("knowledge-source", args=[source.pk])
    for reader in (alpha.member, admin, alpha.owner):
        assert signed_in(reader).get(passage).status_code == 200
        assert signed_in(reader).get(page).status_code == 200
    stranger = signed_in(colleague)
    assert stranger.get(passage).status_code == 404
    assert stranger.get(page).status_code == 404
    status = stranger.get(reverse("knowledge-status") + f"?ids={source.pk}").json()
    assert status["sources"] == []
    listing = signed_in(alpha.owner).get(reverse("knowledge-list")).content.decode()
    assert "notes" not in listing.lower() and "Trip notes" not in listing


def test_the_chat_box_upload_takes_the_knowledge_pages_checks(world):
    alpha, _, colleague, mine, _ = world
    author = signed_in(alpha.member)
    url = reverse("thread-attach", args=[mine.pk])
    json = {"HTTP_ACCEPT": "application/json"}
    added = author.post(url, {"file": upload()}, **json)
    assert added.status_code == 200, added.content
    body = added.json()
    assert [a["title"] for a in body["attachments"]] == ["Trip notes"]
    assert body["attachments"][0]["status"] == "queued"
    refused = author.post(
        url, {"file": upload("run.exe", b"MZ...", "application/octet-stream")}, **json
    )
    assert refused.status_code == 400 and "unsupported type" in refused.json()["error"]
    empty = author.post(url, {}, **json)
    assert empty.status_code == 400 and empty.json()["error"] == "Choose at least one file."
    plain = author.post(url, {"file": upload("other.md", b"# Other\n\nText.")})
    assert plain.status_code == 302 and plain["Location"] == reverse(
        "thread-detail", args=[mine.pk]
    )
    assert signed_in(colleague).post(url, {"file": upload()}, **json).status_code == 404
    with group_scope(alpha.group):
        assert KnowledgeSource.objects.filter(thread_id=mine.pk).count() == 2


def test_deleting_the_thread_deletes_its_attachments(world):
    alpha, _, _, mine, _ = world
    source = attach(alpha.group, mine, alpha.member)
    with group_scope(alpha.group):
        chat_services.thread_delete(thread=mine, actor=alpha.member)
        assert not KnowledgeSource.objects.filter(pk=source.pk).exists()
        assert not Knowledge.objects.filter(source_id=source.pk).exists()

"""The Knowledge pages: members read, admins add and delete, other groups' rows are 404."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from agents import knowledge
from agents.models import KnowledgeSource
from ontology.models import Event
from ontology.scoping import group_scope
from tests.agents.conftest import ingest_text


@pytest.fixture
def owner(client, tenant_a, tenant_b):
    client.force_login(tenant_a.owner)
    return client


def test_an_admin_uploads_files_and_sees_them_queued(owner, tenant_a):
    response = owner.post(
        reverse("knowledge-list"),
        {
            "files": [
                SimpleUploadedFile("faq.md", b"# FAQ\nThe wifi password is on the fridge."),
                SimpleUploadedFile("hours.txt", b"Open 8 to 6."),
            ],
            "text_title": "",
            "text": "",
            "urls": "",
        },
    )
    assert response.status_code == 302
    with group_scope(tenant_a.group):
        titles = set(KnowledgeSource.objects.values_list("title", flat=True))
        events = Event.objects.filter(type="knowledge.source_added", actor=tenant_a.owner)
        assert titles == {"FAQ", "hours"} and events.count() == 2
    page = owner.get(reverse("knowledge-list"))
    assert b"FAQ" in page.content and b"Queued" in page.content and b"data-busy" in page.content
    status = owner.get(reverse("knowledge-status")).json()
    assert status["busy"] is True
    assert {(s["title"], s["status"], s["progress"]) for s in status["sources"]} == {
        ("FAQ", "queued", 0),
        ("hours", "queued", 0),
    }


def test_a_bad_upload_is_refused_with_the_reason_and_nothing_stored(owner, tenant_a, settings):
    settings.PARLEY_KNOWLEDGE_MAX_FILE_BYTES = 5
    response = owner.post(
        reverse("knowledge-list"),
        {
            "files": [SimpleUploadedFile("long.txt", b"far too long")],
            "text_title": "",
            "text": "Some text without a title",
            "urls": "",
        },
    )
    assert response.status_code == 400
    form = response.context["add_form"]
    assert "long.txt" in form.errors["files"][0]
    assert "title" in form.errors["text_title"][0]
    assert b"Some text without a title" in response.content  # what was typed is kept
    with group_scope(tenant_a.group):
        assert not KnowledgeSource.objects.exists()


def test_members_read_but_do_not_manage(client, tenant_a):
    source = ingest_text(tenant_a.group, "Parking", "Park in bay C.")
    client.force_login(tenant_a.member)
    page = client.get(reverse("knowledge-list"))
    assert b"Parking" in page.content and b"Add knowledge" not in page.content
    adding = client.post(reverse("knowledge-list"), {"text_title": "X", "text": "Y"})
    assert adding.status_code == 403
    url = reverse("knowledge-source-delete", args=[source.pk])
    assert client.post(url).status_code == 403
    with group_scope(tenant_a.group):
        assert KnowledgeSource.objects.filter(pk=source.pk).exists()


def test_a_citation_shows_the_chunk_within_its_source_and_never_another_groups(
    owner, tenant_a, tenant_b
):
    mine = ingest_text(tenant_a.group, "Guide", "# Guide\n## Parking\nUse bay C.\n## Lunch\nNoon.")
    theirs = ingest_text(tenant_b.group, "Secret", "Bravo only.")
    with group_scope(tenant_a.group):
        _parking, lunch = mine.chunks.order_by("position")
    with group_scope(tenant_b.group):
        secret = theirs.chunks.get()
    page = owner.get(reverse("knowledge-detail", args=[lunch.pk]))
    assert page.status_code == 200
    assert b"Guide &gt; Lunch" in page.content and b"Noon." in page.content
    assert b"Use bay C." in page.content  # the neighbouring chunk, for context
    assert owner.get(reverse("knowledge-detail", args=[secret.pk])).status_code == 404
    assert owner.get(reverse("knowledge-source", args=[theirs.pk])).status_code == 404
    assert owner.post(reverse("knowledge-source-delete", args=[theirs.pk])).status_code == 404


def test_an_admin_deletes_a_source_and_retries_a_failed_one(owner, tenant_a):
    source = ingest_text(tenant_a.group, "Parking", "Park in bay C.")
    response = owner.post(reverse("knowledge-source-delete", args=[source.pk]))
    assert response.status_code == 302
    with group_scope(tenant_a.group):
        assert not KnowledgeSource.objects.exists()
    ((broken, _),) = knowledge.source_add_files(
        group=tenant_a.group, files=[SimpleUploadedFile("x.pdf", b"not a pdf")], actor=None
    )
    knowledge.source_process(group=tenant_a.group, source_id=broken.pk)
    page = owner.get(reverse("knowledge-source", args=[broken.pk]))
    assert b"The PDF could not be read" in page.content and b"Retry" in page.content
    owner.post(reverse("knowledge-source-retry", args=[broken.pk]))
    with group_scope(tenant_a.group):
        assert KnowledgeSource.objects.get().status == "queued"


def test_changing_the_groups_model_is_audited(owner, tenant_a):
    response = owner.post(reverse("knowledge-model"), {"model": "text-embedding-3-small"})
    assert response.status_code == 302
    tenant_a.group.refresh_from_db()
    assert tenant_a.group.properties["embeddingModel"] == "text-embedding-3-small"
    with group_scope(tenant_a.group):
        assert Event.objects.filter(type="group.updated", actor=tenant_a.owner).exists()


def test_a_long_source_list_comes_in_pages_and_the_poll_asks_for_one(owner, tenant_a, tenant_b):
    from agents.knowledge.views import SOURCES_PER_PAGE

    for n in range(SOURCES_PER_PAGE + 3):
        knowledge.source_add_text(
            group=tenant_a.group, title=f"Note {n}", text=f"Note {n}.", actor=None, queue=False
        )
    theirs, _ = knowledge.source_add_text(
        group=tenant_b.group, title="Theirs", text="Not yours.", actor=None, queue=False
    )
    first = owner.get(reverse("knowledge-list")).content.decode()
    assert first.count("data-source-id=") == SOURCES_PER_PAGE and "Page 1 of 2" in first
    assert 'href="?page=2">Older' in first
    assert f">Note {SOURCES_PER_PAGE + 2}<" in first  # newest first
    second = owner.get(reverse("knowledge-list"), {"page": 2}).content.decode()
    assert second.count("data-source-id=") == 3 and ">Note 0<" in second

    with group_scope(tenant_a.group):
        mine = list(KnowledgeSource.objects.order_by("pk").values_list("pk", flat=True)[:2])
    asked = f"{mine[0]},{mine[1]},{theirs.pk},x"
    status = owner.get(reverse("knowledge-status"), {"ids": asked}).json()
    assert sorted(item["id"] for item in status["sources"]) == mine  # never another group's
    assert status["busy"] is True
    in_flight = owner.get(reverse("knowledge-status")).json()["sources"]
    assert len(in_flight) == SOURCES_PER_PAGE + 3  # no ids: every source still ingesting

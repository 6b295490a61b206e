"""A passage's heading path names its document once: "Facilities handbook > Parking", not
"Facilities handbook > Facilities handbook > Parking" (a Markdown file's first heading is its
title)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from agents import knowledge
from agents.knowledge.ingestion.chunk import chunk_text
from agents.knowledge.retrieval import retrieve
from agents.knowledge.retrieval.search import Hit
from agents.models import Knowledge
from ontology.scoping import group_scope

HANDBOOK = b"""# Facilities handbook

Welcome to the building.

## Parking

Staff park in bay four; visitors sign in at the desk first.
"""


def test_the_title_heading_is_not_part_of_the_section_path():
    drafts = chunk_text(HANDBOOK.decode(), max_tokens=200, overlap=20, title="Facilities handbook")
    assert [d.section for d in drafts] == ["", "Parking"]
    other = chunk_text(HANDBOOK.decode(), max_tokens=200, overlap=20, title="facilities")
    assert [d.section for d in other] == ["Facilities handbook", "Facilities handbook > Parking"]


@pytest.mark.django_db
def test_an_uploaded_handbook_is_cited_without_repeating_its_title(client, tenant_a):
    ((source, _),) = knowledge.source_add_files(
        group=tenant_a.group,
        actor=tenant_a.owner,
        files=[SimpleUploadedFile("facilities.md", HANDBOOK)],
        queue=False,
    )
    source = knowledge.source_process(group=tenant_a.group, source_id=source.pk)
    assert (source.status, source.title) == ("ready", "Facilities handbook")
    hits = retrieve(group=tenant_a.group, query="where do staff park", top_k=1)
    assert hits[0].citation_title == "Facilities handbook > Parking"

    with group_scope(tenant_a.group):
        chunk = Knowledge.objects.get(section="Parking")
    client.force_login(tenant_a.member)
    page = client.get(reverse("knowledge-detail", args=[chunk.pk])).content.decode()
    assert "<title>Facilities handbook &gt; Parking · Parley</title>" in page
    assert '<p class="section-path">Parking</p>' in page


def test_a_passage_chunked_before_the_fix_is_cited_once_too():
    hit = Hit(1, 1, "Facilities handbook", "Facilities handbook > Parking", "Bay four.", 1.0)
    assert hit.citation_title == "Facilities handbook > Parking"
    kept = Hit(1, 1, "Handbook", "Employee handbook > Travel", "Economy.", 1.0)
    assert kept.citation_title == "Handbook > Employee handbook > Travel"

"""Knowledge uploads under attack: rate limits, text bounds read as they stream, XML defused."""

import tracemalloc
import zipfile
from io import BytesIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from agents import knowledge
from agents.knowledge.ingestion.extract import extract_text
from agents.models import Knowledge, KnowledgeSource
from ontology.models import Event
from ontology.scoping import group_scope
from tests.agents.knowledge.test_ingestion import W_NS, make_docx, make_pdf, paragraph

LIMITED = {"user": "2/d", "group": "100/d"}


@pytest.fixture(autouse=True)
def _fresh_counters(clear_cache):
    yield


@pytest.fixture
def upload_limits(settings):
    settings.PARLEY_HTTP_RATE_LIMITS = {**settings.PARLEY_HTTP_RATE_LIMITS, "upload": LIMITED}


def titles(group) -> set[str]:
    with group_scope(group):
        return set(KnowledgeSource.objects.values_list("title", flat=True))


def upload_hits(group) -> list[str]:
    with group_scope(group):
        events = Event.objects.filter(type="rate_limit.hit", metadata__bucket="upload")
        return list(events.values_list("metadata__scope", flat=True))


def pasted(title: str) -> dict:
    return {"text_title": title, "text": f"What {title} says.", "urls": ""}


@pytest.mark.usefixtures("upload_limits")
def test_knowledge_page_uploads_past_the_limit_get_429_and_store_nothing(client, tenant_a):
    client.force_login(tenant_a.member)
    assert client.post(reverse("knowledge-list"), pasted("Nope")).status_code == 403
    client.force_login(tenant_a.owner)  # a member's refused posts did not use up the limit
    for title in ("One", "Two"):
        assert client.post(reverse("knowledge-list"), pasted(title)).status_code == 302
    refused = client.post(reverse("knowledge-list"), pasted("Three"))
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "Too many requests. Please wait" in refused.content.decode()
    assert client.post(reverse("knowledge-list"), pasted("Four")).status_code == 429
    assert titles(tenant_a.group) == {"One", "Two"}
    assert upload_hits(tenant_a.group) == ["user"]  # audited once, not per refusal
    assert client.get(reverse("knowledge-list")).status_code == 200  # reading is not limited


@pytest.mark.usefixtures("upload_limits")
def test_retrying_a_source_counts_as_an_upload(client, tenant_a):
    ((broken, _),) = knowledge.source_add_files(
        group=tenant_a.group, files=[SimpleUploadedFile("x.pdf", b"not a pdf")], actor=None
    )
    client.force_login(tenant_a.owner)
    client.post(reverse("knowledge-list"), pasted("One"))
    knowledge.source_process(group=tenant_a.group, source_id=broken.pk)
    retried = client.post(reverse("knowledge-source-retry", args=[broken.pk]))
    assert retried.status_code == 302
    broken.refresh_from_db()
    knowledge.source_fail(source=broken, reason="Failed again.")
    refused = client.post(reverse("knowledge-source-retry", args=[broken.pk]))
    assert refused.status_code == 429 and refused["Retry-After"]
    broken.refresh_from_db()
    assert (broken.status, broken.error) == ("failed", "Failed again.")


@pytest.mark.usefixtures("upload_limits")
def test_the_admin_add_form_is_limited_like_the_knowledge_page(client, tenant_a):
    client.force_login(tenant_a.owner)
    url = reverse("admin:agents_knowledgesource_add")
    for title in ("One", "Two"):
        assert client.post(url, {"group": tenant_a.group.pk, **pasted(title)}).status_code == 302
    refused = client.post(url, {"group": tenant_a.group.pk, **pasted("Three")})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "Too many requests" in refused.content.decode()
    assert titles(tenant_a.group) == {"One", "Two"}
    assert upload_hits(tenant_a.group) == ["user"]
    assert client.get(url).status_code == 200


def too_much(limit: int) -> str:
    return f"This document holds more text than a source may ({limit:,} characters); split it."


def ingest(tenant, name: str, data: bytes) -> KnowledgeSource:
    ((source, _),) = knowledge.source_add_files(
        group=tenant.group, files=[SimpleUploadedFile(name, data)], actor=None
    )
    return knowledge.source_process(group=tenant.group, source_id=source.pk)


def test_a_word_document_over_the_text_bound_is_refused_while_it_is_read(tenant_a, settings):
    settings.PARLEY_KNOWLEDGE_MAX_TEXT_CHARS = 1000
    # Past the bound the XML is broken: a reader that stops at the bound never gets there.
    body = paragraph("Forty characters of policy text, repeat.") * 30 + "<w:p></w:oops>"
    source = ingest(tenant_a, "long.docx", make_docx(body))
    assert (source.status, source.error) == ("failed", too_much(1000))
    with group_scope(tenant_a.group):
        assert not Knowledge.objects.filter(source=source).exists()
    assert ingest(tenant_a, "short.docx", make_docx(paragraph("Fits."))).status == "ready"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("long.txt", b"word " * 300),
        ("long.html", b"<p>word word</p>" * 150),
        ("long.pdf", make_pdf(["word " * 60] * 5)),
    ],
)
def test_every_format_is_held_to_the_same_text_bound(tenant_a, settings, name, data):
    settings.PARLEY_KNOWLEDGE_MAX_TEXT_CHARS = 1000
    source = ingest(tenant_a, name, data)
    assert (source.status, source.error) == ("failed", too_much(1000))


def test_a_word_document_of_many_empty_elements_is_read_without_building_a_tree(settings):
    settings.PARLEY_KNOWLEDGE_MAX_TEXT_CHARS = 1000
    body = "<w:p>" + "<w:r/>" * 300_000 + "<w:r><w:t>The gist.</w:t></w:r></w:p>"
    docx = make_docx(body)
    tracemalloc.start()
    try:
        text = extract_text(docx, filename="sparse.docx")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert text == "The gist."
    assert peak < 1_000_000  # never even the XML (1.8 MB), let alone its tree (15 times that)


def utf16_docx(document: str) -> bytes:
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", document.encode("utf-16"))
    return out.getvalue()


def test_a_utf16_document_declaring_entities_is_refused_and_nothing_expands(tenant_a):
    laugh = "ha" * 50
    document = (
        f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE w:document [<!ENTITY lol "{laugh}">]>'
        f"<w:document {W_NS}><w:body>{paragraph('&lol;&lol;&lol;')}</w:body></w:document>"
    )
    source = ingest(tenant_a, "laugh.docx", utf16_docx(document))
    assert (source.status, source.error) == (
        "failed",
        "The Word document contains XML declarations Word never writes.",
    )
    with group_scope(tenant_a.group):
        assert not Knowledge.objects.filter(content__contains="haha").exists()
    plain = document.replace(f'<!DOCTYPE w:document [<!ENTITY lol "{laugh}">]>', "")
    plain = plain.replace("&lol;&lol;&lol;", "A UTF-16 policy.")
    assert ingest(tenant_a, "plain.docx", utf16_docx(plain)).status == "ready"

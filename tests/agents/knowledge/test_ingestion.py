"""Ingestion jobs: files to chunks to vectors, limits, duplicates, failures, crashes, commands."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO, StringIO
from pathlib import Path

import psycopg
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection

from agents import knowledge
from agents.knowledge.retrieval import retrieve
from agents.knowledge.tasks import ingest_source
from agents.models import Knowledge, KnowledgeEmbedding, KnowledgeSource
from ontology.models import Event
from ontology.scoping import group_scope
from tests.agents.conftest import ingest_text

ROOT = Path(__file__).resolve().parents[3]


def make_pdf(pages: list[str]) -> bytes:
    """A small, valid PDF with a text layer (one line of Helvetica per page)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode()}\nendstream")
        content = len(objects)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {len(pages) * 2 + 3} 0 R >> >> "
            f"/Contents {content} 0 R >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    return out + trailer.encode()


def upload(name: str, data: bytes, content_type: str = "") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def process(tenant, source):
    return knowledge.source_process(group=tenant.group, source_id=source.pk)


def test_a_pdf_is_read_page_by_page_and_cited_by_page(tenant_a):
    pdf = make_pdf(["The warranty lasts two years.", "Returns need the original receipt."])
    ((source, created),) = knowledge.source_add_files(
        group=tenant_a.group,
        files=[upload("policy.pdf", pdf, "application/pdf")],
        actor=tenant_a.owner,
    )
    assert created and source.title == "policy"
    source = process(tenant_a, source)
    assert (source.status, source.chunk_count, source.error) == ("ready", 2, "")
    hits = retrieve(group=tenant_a.group, query="receipt returns", top_k=1)
    assert hits[0].citation_title == "policy > Page 2"


def test_an_unreadable_pdf_fails_with_the_reason_and_leaves_no_chunks(tenant_a):
    ((source, _),) = knowledge.source_add_files(
        group=tenant_a.group,
        files=[upload("broken.pdf", b"%PDF-1.4\nthis is not a pdf")],
        actor=tenant_a.owner,
    )
    source = process(tenant_a, source)
    assert source.status == "failed"
    assert source.error.startswith("The PDF could not be read")
    with group_scope(tenant_a.group):
        assert not Knowledge.objects.exists()
        assert Event.objects.filter(type="knowledge.source_failed", target_id=str(source.pk))
    # A retry starts over (and fails again, for the same reason): nothing half-imported.
    again = knowledge.source_retry(source=source, actor=tenant_a.owner)
    assert again.status == "queued"
    assert process(tenant_a, again).status == "failed"


def test_a_scanned_pdf_without_text_says_so(tenant_a):
    ((source, _),) = knowledge.source_add_files(
        group=tenant_a.group, files=[upload("scan.pdf", make_pdf([""]))], actor=None
    )
    assert "no extractable text" in process(tenant_a, source).error


W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def make_docx(body: str, *, styles: str = "", doctype: str = "") -> bytes:
    """A minimal .docx: the parts Word needs to open it, `body` as the document's body."""
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/'
            '2006/content-types"><Override PartName="/word/document.xml" ContentType="'
            'application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"'
            "/></Types>"
        ),
        "word/document.xml": f'<?xml version="1.0"?>{doctype}<w:document {W_NS}><w:body>'
        f"{body}</w:body></w:document>",
        "word/styles.xml": f'<?xml version="1.0"?><w:styles {W_NS}>{styles}</w:styles>',
    }
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, xml in parts.items():
            archive.writestr(name, xml)
    return out.getvalue()


def paragraph(text: str, style: str = "", listed: bool = False) -> str:
    props = f'<w:pStyle w:val="{style}"/>' if style else ""
    props += '<w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr>' if listed else ""
    return f"<w:p><w:pPr>{props}</w:pPr><w:r><w:t>{text}</w:t></w:r></w:p>"


def test_a_word_document_keeps_its_headings_lists_and_tables_and_is_cited_by_section(tenant_a):
    # Style ids are the document's own (a German Word writes "berschrift1"); names decide.
    styles = (
        '<w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/>'
        '</w:style><w:style w:type="paragraph" w:styleId="H2"><w:name w:val="Heading 2"/>'
        "</w:style>"
    )
    body = (
        paragraph("Travel policy", "berschrift1")
        + paragraph("Hotels", "H2")
        + paragraph("Book hotels through the travel portal.")
        + paragraph("Breakfast is included", listed=True)
        + "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>City</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r>"
        "<w:t>Nightly cap</w:t></w:r></w:p></w:tc></w:tr><w:tr><w:tc><w:p><w:r><w:t>Paris"
        "</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>180 EUR</w:t></w:r></w:p></w:tc></w:tr>"
        "</w:tbl>" + "<w:p><w:r><w:delText>Deleted in review.</w:delText></w:r></w:p>"
    )
    ((source, _),) = knowledge.source_add_files(
        group=tenant_a.group,
        actor=tenant_a.owner,
        files=[upload("travel.docx", make_docx(body, styles=styles))],
    )
    source = process(tenant_a, source)
    assert (source.status, source.error) == ("ready", "")
    with group_scope(tenant_a.group):
        text = "\n".join(Knowledge.objects.values_list("content", flat=True))
    assert "- Breakfast is included" in text
    assert "City | Nightly cap\nParis | 180 EUR" in text
    assert "Deleted in review" not in text
    hits = retrieve(group=tenant_a.group, query="hotel nightly cap in Paris", top_k=1)
    assert hits[0].citation_title == "travel > Travel policy > Hotels"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PK not really a zip", "not a Word document"),
        (
            make_docx(paragraph("&lol;"), doctype='<!DOCTYPE w:document [<!ENTITY lol "lol">]>'),
            "XML declarations Word never writes",
        ),
        (make_docx(""), "has no text"),
    ],
)
def test_a_bad_word_document_fails_with_the_reason(tenant_a, data, reason):
    ((source, _),) = knowledge.source_add_files(
        group=tenant_a.group, files=[upload("bad.docx", data)], actor=None
    )
    source = process(tenant_a, source)
    assert source.status == "failed" and reason in source.error


def test_limits_refuse_the_whole_upload_with_one_message_per_file(tenant_a, settings):
    settings.PARLEY_KNOWLEDGE_MAX_FILE_BYTES = 100
    settings.PARLEY_KNOWLEDGE_MAX_FILES = 3
    files = [
        upload("ok.md", b"# Fine\nSmall."),
        upload("big.txt", b"x" * 101),
        upload("slides.pptx", b"PK.."),
    ]
    with pytest.raises(ValidationError) as problem:
        knowledge.source_add_files(group=tenant_a.group, files=files, actor=tenant_a.owner)
    messages = problem.value.messages
    assert any("big.txt" in m and "limit" in m for m in messages)
    assert any("slides.pptx" in m and "unsupported" in m for m in messages)
    with pytest.raises(ValidationError, match="At most 3 files"):
        knowledge.source_add_files(
            group=tenant_a.group, files=[upload(f"{n}.txt", b"x") for n in range(4)], actor=None
        )
    settings.PARLEY_KNOWLEDGE_MAX_SOURCES = 1
    knowledge.source_add_text(group=tenant_a.group, title="One", text="First.", actor=None)
    with pytest.raises(ValidationError, match="at most 1 knowledge sources"):
        knowledge.source_add_text(group=tenant_a.group, title="Two", text="Second.", actor=None)
    with group_scope(tenant_a.group):
        assert list(KnowledgeSource.objects.values_list("title", flat=True)) == ["One"]


def test_the_same_content_again_is_recognised_not_duplicated(tenant_a):
    first, created = knowledge.source_add_text(
        group=tenant_a.group, title="Refunds", text="30 days.", actor=None
    )
    again, created_again = knowledge.source_add_text(
        group=tenant_a.group, title="Refunds (copy)", text="30 days.", actor=None
    )
    ((as_file, created_file),) = knowledge.source_add_files(
        group=tenant_a.group, files=[upload("refunds.txt", b"30 days.")], actor=None
    )
    assert (created, created_again, created_file) == (True, False, False)
    assert again.pk == as_file.pk == first.pk
    with group_scope(tenant_a.group):
        assert KnowledgeSource.objects.count() == 1
        assert Event.objects.filter(type="knowledge.source_added").count() == 1


def test_deleting_a_source_deletes_its_chunks_and_vectors_and_is_audited(tenant_a, tenant_b):
    source = ingest_text(tenant_a.group, "Parking", "Park in bay C.", actor=tenant_a.owner)
    kept = ingest_text(tenant_b.group, "Parking", "Park in bay C.")
    with group_scope(tenant_a.group):
        assert KnowledgeEmbedding.objects.count() == 1
    knowledge.source_delete(source=source, actor=tenant_a.owner)
    with group_scope(tenant_a.group):
        assert not Knowledge.objects.exists() and not KnowledgeEmbedding.objects.exists()
        event = Event.objects.get(type="knowledge.source_deleted")
    assert (event.actor, event.target_label, event.metadata["chunks"]) == (
        tenant_a.owner,
        "Parking",
        1,
    )
    with group_scope(tenant_b.group):
        assert Knowledge.objects.get().source_id == kept.pk


def test_a_job_run_twice_changes_nothing_the_second_time(tenant_a):
    source = ingest_text(tenant_a.group, "Pets", "Dogs are welcome on Fridays.")
    assert ingest_source(group_id=tenant_a.group.pk, source_id=source.pk) == "ready"
    assert ingest_source(group_id=tenant_a.group.pk, source_id=source.pk + 1000) is None
    with group_scope(tenant_a.group):
        assert Knowledge.objects.count() == KnowledgeEmbedding.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_leaves_no_duplicates_after_the_retry(tenant_a, settings):
    """A real process is killed (SIGKILL) while it embeds the second batch of a source."""
    settings.PARLEY_EMBEDDING_BATCH_SIZE = 2
    text = "\n\n".join(f"# Part {n}\nRule {n}: keep the door number {n} closed." for n in range(6))
    source, _ = knowledge.source_add_text(
        group=tenant_a.group, title="Rules", text=text, actor=None, queue=False
    )
    source = knowledge.source_chunk(group=tenant_a.group, source_id=source.pk)
    with group_scope(tenant_a.group):
        chunks = list(Knowledge.objects.filter(source=source).order_by("id"))
    assert len(chunks) == 6

    # An uncommitted vector for chunk 3 makes the worker's insert of its second batch wait.
    db = connection.settings_dict
    url = f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PARLEY_EMBEDDING_BATCH_SIZE": "2",
        "DATABASE_POOL": "0",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    blocker = psycopg.connect(url)
    blocker.execute(
        "INSERT INTO agents_knowledgeembedding (group_id, source_id, chunk_id, model, embedding) "
        "VALUES (%s, %s, %s, 'all-MiniLM-L6-v2', %s::vector)",
        [tenant_a.group.pk, source.pk, chunks[2].pk, "[" + ",".join(["0.1"] * 384) + "]"],
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from agents.knowledge.tasks import ingest_source; "
            f"ingest_source(group_id={tenant_a.group.pk}, source_id={source.pk})",
        ],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in worker.stderr:  # the worker logs each committed batch
            if f"knowledge source {source.pk}: 2/6 embedded" in line:
                break
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        blocker.rollback()
        blocker.close()
    with group_scope(tenant_a.group):
        assert KnowledgeEmbedding.objects.count() == 2
        assert KnowledgeSource.objects.get().status == "embedding"

    # Redelivery (late ack): the job resumes and finishes the source.
    assert ingest_source(group_id=tenant_a.group.pk, source_id=source.pk) == "ready"
    with group_scope(tenant_a.group):
        rows = list(KnowledgeEmbedding.objects.values_list("chunk_id", flat=True))
        finished = KnowledgeSource.objects.get()
    assert sorted(rows) == [c.pk for c in chunks]  # each chunk once
    assert (finished.embedded_count, finished.embed_total, finished.progress) == (6, 6, 100)


@pytest.mark.django_db(transaction=True)
def test_the_embeddings_queue_worker_ingests_a_source(tenant_a, celery_worker):
    source, _ = knowledge.source_add_text(
        group=tenant_a.group,
        title="Lunch",
        text="Lunch is served at noon.",
        actor=None,
        queue=False,
    )
    result = ingest_source.delay(group_id=tenant_a.group.pk, source_id=source.pk)
    assert result.get(timeout=120) == "ready"
    assert retrieve(group=tenant_a.group, query="When do we eat?", top_k=1)[0].title == "Lunch"


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/guide.html")
            self.end_headers()
            return
        body = (
            b"<html><head><title>Visitor guide</title></head><body><h1>Visitors</h1>"
            b"<p>Visitors sign in at the front desk.</p></body></html>"
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def web_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_urls_are_stored_then_fetched_by_the_job_and_private_hosts_refused(
    tenant_a, web_server, settings
):
    settings.PARLEY_ALLOW_PRIVATE_BASE_URLS = False
    ((source, _),) = knowledge.source_add_urls(
        group=tenant_a.group, urls=[f"{web_server}/moved"], actor=None
    )
    refused = process(tenant_a, source)
    assert refused.status == "failed" and "private or local" in refused.error

    settings.PARLEY_ALLOW_PRIVATE_BASE_URLS = True
    settings.PARLEY_KNOWLEDGE_FETCH_URLS = False
    source = knowledge.source_add_urls(
        group=tenant_a.group, urls=[f"{web_server}/guide.html"], actor=None
    )[0][0]
    stored = process(tenant_a, source)
    assert stored.status == "failed" and "PARLEY_KNOWLEDGE_FETCH_URLS" in stored.error

    settings.PARLEY_KNOWLEDGE_FETCH_URLS = True
    fetched = process(tenant_a, knowledge.source_retry(source=refused, actor=None))
    assert (fetched.status, fetched.title) == ("ready", "Visitor guide")
    hits = retrieve(group=tenant_a.group, query="where do visitors sign in", top_k=1)
    assert hits[0].citation_title == "Visitor guide > Visitors"


def test_a_url_is_fetched_from_the_address_that_was_checked_never_a_second_answer(
    tenant_a, web_server, settings, monkeypatch
):
    """DNS rebinding: the name answers a public address first, then 127.0.0.1. The socket
    must go to the address that was checked; asking the resolver again reaches our own
    network (here, the test's web server, which would serve the page)."""
    settings.PARLEY_ALLOW_PRIVATE_BASE_URLS = False
    port = int(web_server.rsplit(":", 1)[1])
    answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1", "127.0.0.1"])
    real_resolve, real_connect = socket.getaddrinfo, socket.create_connection
    tried = []

    def resolve(host, *args, **kwargs):
        return real_resolve(next(answers) if host == "rebinding.example" else host, *args, **kwargs)

    def connect(address, *args, **kwargs):
        tried.append(address[0])
        if address[0] == "93.184.216.34":  # the test machine has no route out: that host is down
            raise ConnectionRefusedError("Connection refused")
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setattr(socket, "create_connection", connect)
    ((source, _),) = knowledge.source_add_urls(
        group=tenant_a.group, urls=[f"http://rebinding.example:{port}/guide.html"], actor=None
    )
    failed = process(tenant_a, source)
    assert failed.status == "failed" and "could not be fetched" in failed.error
    assert tried == ["93.184.216.34"]
    assert failed.title != "Visitor guide"

    settings.PARLEY_ALLOW_PRIVATE_BASE_URLS = True  # development: the same name is fetched
    answers = iter(["127.0.0.1"] * 4)
    fetched = process(tenant_a, knowledge.source_retry(source=failed, actor=None))
    assert (fetched.status, fetched.title) == ("ready", "Visitor guide")


def test_the_folder_command_ingests_supported_files_with_progress(tenant_a, tmp_path):
    (tmp_path / "faq.md").write_text("# FAQ\n## Wifi\nThe wifi password is on the fridge.")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "hours.txt").write_text("The office opens at eight.")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG")
    out, err = StringIO(), StringIO()
    call_command("ingest_knowledge", str(tmp_path), "--group", "alpha", stdout=out, stderr=err)
    assert "2 added, 0 already there, 0 failed" in out.getvalue()
    assert "logo.png" in out.getvalue()  # skipped, and said so
    with group_scope(tenant_a.group):
        assert sorted(KnowledgeSource.objects.values_list("title", "status")) == [
            ("FAQ", "ready"),
            ("hours", "ready"),
        ]
    call_command("ingest_knowledge", str(tmp_path), "--group", "alpha", stdout=out, stderr=err)
    assert "0 added, 2 already there" in out.getvalue()


def test_eval_retrieval_reports_recall_and_mrr_for_each_path(tenant_a, tmp_path):
    sample = ROOT / "bench" / "retrieval_eval"
    out = StringIO()
    call_command(
        "eval_retrieval",
        str(sample / "questions.jsonl"),
        "--corpus",
        str(sample / "docs"),
        "--k",
        "5",
        "--json",
        stdout=out,
    )
    report = json.loads(out.getvalue().strip().splitlines()[-1])
    assert set(report) == {"vector", "keyword", "hybrid"}
    assert report["hybrid"]["questions"] >= 20
    for metrics in report.values():
        assert 0 <= metrics["mrr"] <= metrics["recall@5"] <= 1
    # Paraphrased questions: meaning beats words, and fusing is never worse than either.
    assert report["vector"]["recall@5"] > report["keyword"]["recall@5"]
    for metric in ("recall@5", "mrr"):
        assert report["hybrid"][metric] >= max(report["vector"][metric], report["keyword"][metric])

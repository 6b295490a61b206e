"""Turn an uploaded document into plain text with Markdown headings (`# Title`).

Headings are kept because chunks carry their section path as context. Text,
Markdown and HTML are read here; PDFs through pypdf (one section per page); Word
documents from their own XML (docx.py).

Every format is held to settings.PARLEY_KNOWLEDGE_MAX_TEXT_CHARS while it is read
(page by page, element by element), so an upload that unpacks into far more text than
the chunk cap allows is refused before it fills the worker's memory.
"""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import PurePath

from django.conf import settings

from agents.knowledge.ingestion.docx import UnreadableWord, docx_text, too_much_text

FORMATS = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}
CONTENT_TYPES = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
}
SUPPORTED_EXTENSIONS = ", ".join(sorted(FORMATS))
TITLE_CHARS = 1000


class UnreadableDocument(Exception):
    """The document cannot be turned into text; the message says why, for the source's page."""


def format_of(filename: str = "", content_type: str = "") -> str | None:
    """The document format from its file extension, else from its content type."""
    suffix = PurePath(filename).suffix.lower() if filename else ""
    if suffix in FORMATS:
        return FORMATS[suffix]
    return CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())


def extract_text(raw: bytes, *, filename: str = "", content_type: str = "") -> str:
    kind = format_of(filename, content_type)
    if kind is None:
        raise UnreadableDocument(f"Unsupported file type. Supported types: {SUPPORTED_EXTENSIONS}.")
    max_chars = settings.PARLEY_KNOWLEDGE_MAX_TEXT_CHARS
    if kind == "pdf":
        return _pdf_text(raw, max_chars)
    if kind == "docx":
        return _docx_text(raw, max_chars)
    text = _decode(raw)
    if kind == "html":
        return _html_text(text, max_chars)
    if len(text) > max_chars:
        raise UnreadableDocument(too_much_text(max_chars))
    return text


def _decode(raw: bytes) -> str:
    if b"\x00" in raw[:8192]:
        raise UnreadableDocument("The file is binary, not text.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _pdf_text(raw: bytes, max_chars: int) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableDocument("The PDF is password-protected.")
        pages, size = [], 0
        for page in reader.pages:
            pages.append(page.extract_text() or "")
            size += len(pages[-1])
            if size > max_chars:
                raise UnreadableDocument(too_much_text(max_chars))
    except UnreadableDocument:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as error:
        raise UnreadableDocument(f"The PDF could not be read ({error}).") from error
    if not any(page.strip() for page in pages):
        raise UnreadableDocument(
            "The PDF has no extractable text (it may be scanned images without a text layer)."
        )
    return "\n\n".join(f"# Page {n}\n\n{text.strip()}" for n, text in enumerate(pages, 1))


def _docx_text(raw: bytes, max_chars: int) -> str:
    try:
        text = docx_text(raw, max_chars=max_chars)
    except UnreadableWord as problem:
        raise UnreadableDocument(str(problem)) from problem
    if not text.strip():
        raise UnreadableDocument("The Word document has no text.")
    return text


class _HTMLToText(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    BLOCKS = {
        "p",
        "div",
        "li",
        "tr",
        "br",
        "section",
        "article",
        "blockquote",
        "pre",
        "table",
        "ul",
        "ol",
        "dd",
        "dt",
        "header",
        "footer",
        "main",
        "nav",
        "aside",
    }

    def __init__(self, max_chars: int | None = None) -> None:
        super().__init__(convert_charrefs=True)
        self.max_chars = max_chars
        self.size = 0
        self.text = io.StringIO()
        self.skipping = 0
        self.heading: int | None = None
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._in_title = True
        if tag in self.SKIP:
            self.skipping += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.heading = int(tag[1])
            self._write("\n\n" + "#" * self.heading + " ")
        elif tag in self.BLOCKS:
            self._write("\n\n" if tag not in ("br", "li", "tr") else "\n")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif re.fullmatch(r"h[1-6]", tag):
            self.heading = None
            self._write("\n\n")
        elif tag in self.BLOCKS:
            self._write("\n")

    def handle_data(self, data):
        if self._in_title and len(self.title) < TITLE_CHARS:
            self.title += data
        if self.skipping:
            return
        if self.heading is not None:
            data = " ".join(data.split())
        self._write(data)

    def _write(self, text: str) -> None:
        self.size += len(text)
        if self.max_chars is not None and self.size > self.max_chars:
            raise UnreadableDocument(too_much_text(self.max_chars))
        self.text.write(text)


def _html_text(html: str, max_chars: int) -> str:
    parser = _HTMLToText(max_chars)
    parser.feed(html)
    parser.close()
    text = parser.text.getvalue()
    lines = [
        " ".join(line.split()) if not line.startswith("#") else line.strip()
        for line in text.splitlines()
    ]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_title(raw: bytes) -> str:
    parser = _HTMLToText()
    parser.feed(_decode(raw))
    return " ".join(parser.title.split())


def title_from(filename: str, raw: bytes, kind: str | None) -> str:
    """A source's title: the page's <title>, a Markdown file's first heading, else its name."""
    if kind == "html":
        title = html_title(raw)
        if title:
            return title
    if kind == "markdown":
        for line in raw.decode("utf-8", errors="replace").splitlines()[:20]:
            if line.startswith("# "):
                return line[2:].strip()
    return PurePath(filename).stem.replace("_", " ").replace("-", " ").strip() or filename

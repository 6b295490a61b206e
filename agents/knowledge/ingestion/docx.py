"""Word documents (.docx) as plain text with Markdown headings, from the file's own XML.

A .docx is a zip of XML parts; the text is in word/document.xml. Paragraphs in a heading
style (by the style's name, so "heading 2" is found whatever the document's language
calls its style id) become `##` headings, list items get a dash, table rows become one
line with their cells separated by " | ". Images, comments and tracked deletions carry
no text for search.

The file is untrusted. Its XML goes through defusedxml, which refuses a DOCTYPE (Word
never writes one; entity expansion needs one) in whatever encoding the part is written,
and is read as a stream from the zip: no element tree is built, at most MAX_PART_BYTES are
unpacked, and reading stops as soon as the text passes the caller's bound. So neither a
zip bomb nor an XML bomb is ever held in memory.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, ParseError

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
DOCUMENT = "word/document.xml"
STYLES = "word/styles.xml"
MAX_PART_BYTES = 64 * 1024 * 1024  # unpacked; a book of plain text is a few MB
MAX_DEPTH = 512  # Word nests a few dozen levels, nested tables included
MAX_HEADING_STYLES = 1000
READ_BYTES = 64 * 1024
_HEADING_NAME = re.compile(r"^(?:heading\s*(\d)|title)$", re.IGNORECASE)
_BLOCK_PARENTS = (f"{W}body", f"{W}sdtContent")  # a content control's blocks count as the body's


class UnreadableWord(Exception):
    """Not a readable Word document; the message says why."""


def too_much_text(limit: int) -> str:
    """The refusal for a document of any format whose text is over the bound."""
    return f"This document holds more text than a source may ({limit:,} characters); split it."


def docx_text(raw: bytes, *, max_chars: int) -> str:
    """The document's text; UnreadableWord as soon as it holds more than `max_chars`."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = set(archive.namelist())
            if DOCUMENT not in names:
                raise UnreadableWord("The file is not a Word document (no word/document.xml).")
            styles = _Styles()
            if STYLES in names:
                _read(archive, STYLES, styles)
            document = _Document(styles.levels, max_chars)
            _read(archive, DOCUMENT, document)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as error:
        raise UnreadableWord("The file is not a Word document (not a .docx zip).") from error
    return "\n\n".join(document.blocks)


def _read(archive: zipfile.ZipFile, name: str, handler: _Handler) -> None:
    """Feed one part to the handler as it is unpacked, refusing what Word never writes."""
    info = archive.getinfo(name)
    if info.file_size > MAX_PART_BYTES:
        raise UnreadableWord("The Word document is too large once unpacked.")
    parser = DefusedXMLParser(target=handler, forbid_dtd=True)
    unpacked = 0
    try:
        with archive.open(info) as part:
            while chunk := part.read(READ_BYTES):
                unpacked += len(chunk)  # the header's size may lie; the read does not
                if unpacked > MAX_PART_BYTES:
                    raise UnreadableWord("The Word document is too large once unpacked.")
                parser.feed(chunk)
        parser.close()
    except DefusedXmlException as error:
        raise UnreadableWord(
            "The Word document contains XML declarations Word never writes."
        ) from error
    except ParseError as error:
        raise UnreadableWord(f"The Word document's XML is damaged ({error}).") from error


class _Handler:
    """Parser callbacks that keep the path to the current element, never the elements."""

    def __init__(self) -> None:
        self.path: list[str] = []

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self.path.append(tag)
        if len(self.path) > MAX_DEPTH:
            raise UnreadableWord("The Word document's XML is nested deeper than Word writes.")
        self.opened(tag, attrs)

    def end(self, tag: str) -> None:
        self.closed(tag, len(self.path))
        self.path.pop()

    @property
    def parent(self) -> str | None:
        return self.path[-2] if len(self.path) > 1 else None

    def data(self, text: str) -> None:
        pass

    def opened(self, tag: str, attrs: dict[str, str]) -> None:
        pass

    def closed(self, tag: str, depth: int) -> None:
        pass


class _Styles(_Handler):
    """Style id -> heading level, from each paragraph style's name ("heading 1", "Title")."""

    def __init__(self) -> None:
        super().__init__()
        self.levels: dict[str, int] = {}
        self.style_id = ""

    def opened(self, tag: str, attrs: dict[str, str]) -> None:
        if tag == f"{W}style":
            self.style_id = attrs.get(f"{W}styleId", "")
        elif tag == f"{W}name" and self.parent == f"{W}style":
            match = _HEADING_NAME.match(attrs.get(f"{W}val", ""))
            if match and len(self.levels) < MAX_HEADING_STYLES:
                self.levels[self.style_id] = int(match.group(1) or 1)


class _Document(_Handler):
    """Blocks of text from word/document.xml: paragraphs, and tables one row a line.

    A block is a paragraph or table of the body (or of a content control in it). Its
    visible text (runs, tabs and breaks; deleted text excluded) is written as it is read,
    and counted against the bound.
    """

    def __init__(self, levels: dict[str, int], max_chars: int) -> None:
        super().__init__()
        self.levels, self.max_chars = levels, max_chars
        self.blocks: list[str] = []
        self.size = 0
        self.block: str | None = None
        self.block_depth = self.row_depth = self.cell_depth = 0
        self.text = io.StringIO()  # the open paragraph's, or the open table cell's
        self.cells: list[str] = []
        self.rows: list[str] = []
        self.in_text = False
        self.style: str | None = None
        self.outline: str | None = None
        self.listed = False

    def opened(self, tag: str, attrs: dict[str, str]) -> None:
        depth = len(self.path)
        if self.block is None:
            if tag in (f"{W}p", f"{W}tbl") and self.parent in _BLOCK_PARENTS:
                self._open_block(tag, depth)
            return
        if tag == f"{W}t":
            self.in_text = True
        elif tag == f"{W}tab" and not self._in_properties():
            self._write("\t")
        elif tag in (f"{W}br", f"{W}cr"):
            self._write("\n")
        elif self.block == f"{W}p" and depth == self.block_depth + 2 and self.parent == f"{W}pPr":
            if tag == f"{W}pStyle":
                self.style = attrs.get(f"{W}val", "")
            elif tag == f"{W}outlineLvl":
                self.outline = attrs.get(f"{W}val", "")
            elif tag == f"{W}numPr":
                self.listed = True
        elif tag == f"{W}tr" and not self.row_depth:
            self.row_depth, self.cells = depth, []
        elif tag == f"{W}tc" and self.row_depth and not self.cell_depth:
            self.cell_depth, self.text = depth, io.StringIO()

    def closed(self, tag: str, depth: int) -> None:
        if tag == f"{W}t":
            self.in_text = False
        if self.block is None:
            return
        if tag == f"{W}p" and self.cell_depth:
            self._write(" ")  # a cell's paragraphs stay apart on its one line
        if depth == self.cell_depth:
            self.cells.append(" ".join(self.text.getvalue().split()))
            self.cell_depth = 0
        elif depth == self.row_depth:
            self.rows.append(" | ".join(self.cells))
            self.row_depth = 0
        elif depth == self.block_depth:
            text = self._paragraph() if self.block == f"{W}p" else "\n".join(self.rows)
            if text.strip():
                self.blocks.append(text)
            self.block = None

    def data(self, text: str) -> None:
        if self.in_text and self.block is not None:
            self._write(text)

    def _open_block(self, tag: str, depth: int) -> None:
        self.block, self.block_depth = tag, depth
        self.text, self.rows = io.StringIO(), []
        self.style = self.outline = None
        self.listed = False

    def _in_properties(self) -> bool:
        """Inside paragraph properties, where a tab is a tab stop, not text."""
        return f"{W}pPr" in self.path[self.block_depth :]

    def _write(self, text: str) -> None:
        self.size += len(text)
        if self.size > self.max_chars:
            raise UnreadableWord(too_much_text(self.max_chars))
        self.text.write(text)

    def _paragraph(self) -> str:
        text = self.text.getvalue().strip()
        if not text:
            return text
        level = self.levels.get(self.style) if self.style is not None else None
        if level is None and self.outline is not None and self.outline.isdigit():
            level = int(self.outline) + 1
        if level is not None and level <= 6:
            return "#" * level + " " + " ".join(text.split())
        if self.listed:
            return "- " + text
        return text

"""Word documents (.docx) as plain text with Markdown headings, from the file's own XML.

A .docx is a zip of XML parts; the text is in word/document.xml. Paragraphs in a heading
style (by the style's name, so "heading 2" is found whatever the document's language
calls its style id) become `##` headings, list items get a dash, table rows become one
line with their cells separated by " | ". Images, comments and tracked deletions carry
no text for search.

The file is untrusted: the zip is read only if its document part is of a sane size once
unpacked, and XML with a DOCTYPE is refused (Word never writes one; entity expansion
needs one), so neither a zip bomb nor an XML bomb gets unpacked.
"""

from __future__ import annotations

import io
import re
import zipfile
from xml.etree import ElementTree

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
DOCUMENT = "word/document.xml"
STYLES = "word/styles.xml"
MAX_PART_BYTES = 64 * 1024 * 1024  # unpacked; a book of plain text is a few MB
_HEADING_NAME = re.compile(r"^(?:heading\s*(\d)|title)$", re.IGNORECASE)


class UnreadableWord(Exception):
    """Not a readable Word document; the message says why."""


def docx_text(raw: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            document = _part(archive, DOCUMENT)
            if document is None:
                raise UnreadableWord("The file is not a Word document (no word/document.xml).")
            styles = _part(archive, STYLES)
    except zipfile.BadZipFile as error:
        raise UnreadableWord("The file is not a Word document (not a .docx zip).") from error
    levels = _heading_levels(_parse(styles)) if styles is not None else {}
    body = _parse(document).find(f"{W}body")
    if body is None:
        return ""
    blocks = [text for element in body for text in _block(element, levels) if text.strip()]
    return "\n\n".join(blocks)


def _part(archive: zipfile.ZipFile, name: str) -> bytes | None:
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    if info.file_size > MAX_PART_BYTES:
        raise UnreadableWord("The Word document is too large once unpacked.")
    with archive.open(info) as part:
        data = part.read(MAX_PART_BYTES + 1)  # the header's size may lie; the read does not
    if len(data) > MAX_PART_BYTES:
        raise UnreadableWord("The Word document is too large once unpacked.")
    return data


def _parse(xml: bytes) -> ElementTree.Element:
    if b"<!DOCTYPE" in xml:
        raise UnreadableWord("The Word document contains XML declarations Word never writes.")
    try:
        return ElementTree.fromstring(xml)  # noqa: S314 - no DOCTYPE, so no entity expansion
    except ElementTree.ParseError as error:
        raise UnreadableWord(f"The Word document's XML is damaged ({error}).") from error


def _heading_levels(styles: ElementTree.Element) -> dict[str, int]:
    """Style id -> heading level, from each paragraph style's name ("heading 1", "Title")."""
    levels: dict[str, int] = {}
    for style in styles.iter(f"{W}style"):
        name = style.find(f"{W}name")
        match = _HEADING_NAME.match(name.get(f"{W}val", "") if name is not None else "")
        if match:
            levels[style.get(f"{W}styleId", "")] = int(match.group(1) or 1)
    return levels


def _block(element: ElementTree.Element, levels: dict[str, int]) -> list[str]:
    if element.tag == f"{W}p":
        return [_paragraph(element, levels)]
    if element.tag == f"{W}tbl":
        return ["\n".join(_row(row) for row in element.iter(f"{W}tr"))]
    if element.tag == f"{W}sdt":  # a content control (e.g. a table of contents) holds blocks
        content = element.find(f"{W}sdtContent")
        if content is None:
            return []
        return [text for child in content for text in _block(child, levels)]
    return []


def _paragraph(paragraph: ElementTree.Element, levels: dict[str, int]) -> str:
    text = _text(paragraph).strip()
    properties = paragraph.find(f"{W}pPr")
    if not text or properties is None:
        return text
    style = properties.find(f"{W}pStyle")
    level = levels.get(style.get(f"{W}val", "")) if style is not None else None
    outline = properties.find(f"{W}outlineLvl")
    if level is None and outline is not None and outline.get(f"{W}val", "").isdigit():
        level = int(outline.get(f"{W}val")) + 1
    if level is not None and level <= 6:
        return "#" * level + " " + " ".join(text.split())
    if properties.find(f"{W}numPr") is not None:
        return "- " + text
    return text


def _row(row: ElementTree.Element) -> str:
    cells = [" ".join(_text(cell).split()) for cell in row.findall(f"{W}tc")]
    return " | ".join(cells)


def _text(element: ElementTree.Element) -> str:
    """The element's visible text: runs, tabs and breaks (deleted text excluded)."""
    parts: list[str] = []
    for node in element.iter():
        if node.tag == f"{W}t":
            parts.append(node.text or "")
        elif node.tag == f"{W}tab":
            parts.append("\t")
        elif node.tag in (f"{W}br", f"{W}cr"):
            parts.append("\n")
    return "".join(parts)

"""Split a document into overlapping chunks by tokens, each knowing its heading path.

A chunk never spans two sections, so its section path (e.g. "Travel, then Flights")
is true for all of its text; that path and the document title are embedded and
indexed with it. Tokens are the platform's own count (agents.tokens).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agents.tokens import split_tokens

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
SECTION_SEPARATOR = " > "


@dataclass(frozen=True)
class ChunkDraft:
    section: str
    content: str
    token_count: int


def _same_heading(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def without_title(title: str, section: str) -> str:
    """The heading path below the document's title: a Markdown file's first heading usually is
    its title (extract.title_from), and "Handbook > Handbook > Parking" says it twice."""
    first, separator, rest = section.partition(SECTION_SEPARATOR)
    if title and _same_heading(first, title):
        return rest if separator else ""
    return section


def heading_path(title: str, section: str) -> str:
    """What a passage is called where it is cited: its document's title, then its headings."""
    section = without_title(title, section)
    return f"{title}{SECTION_SEPARATOR}{section}" if section else title


def sections(text: str, *, title: str = "") -> list[tuple[str, str]]:
    """(heading path, body) pairs in document order; text before any heading has path "".

    A path never starts with the document's `title` (see without_title)."""
    path: list[tuple[int, str]] = []
    found: list[tuple[str, list[str]]] = [("", [])]
    in_code = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        if match:
            level, heading = len(match.group(1)), match.group(2).strip()
            path = [(lvl, name) for lvl, name in path if lvl < level] + [(level, heading)]
            found.append((SECTION_SEPARATOR.join(name for _, name in path), []))
        else:
            found[-1][1].append(line)
    return [
        (without_title(title, name), "\n".join(lines).strip())
        for name, lines in found
        if "\n".join(lines).strip()
    ]


def _cut(tokens: list[str], start: int, end: int, max_tokens: int) -> int:
    """Where to end a window: before a paragraph, else after a sentence, else at `end`."""
    floor = start + max(1, int(max_tokens * 0.6))
    for i in range(end - 1, floor - 1, -1):
        if tokens[i].startswith("\n"):
            return i
    for i in range(end - 1, floor - 1, -1):
        if tokens[i].strip() in {".", "!", "?"}:
            return i + 1
    return end


def chunk_text(text: str, *, max_tokens: int, overlap: int, title: str = "") -> list[ChunkDraft]:
    if max_tokens < 8 or not 0 <= overlap < max_tokens // 2:
        raise ValueError("Chunks need at least 8 tokens and an overlap under half of them.")
    drafts: list[ChunkDraft] = []
    for section, body in sections(text, title=title):
        tokens = split_tokens(body)
        start = 0
        while start < len(tokens):
            end = min(len(tokens), start + max_tokens)
            if end < len(tokens):
                end = _cut(tokens, start, end, max_tokens)
            content = "".join(tokens[start:end]).strip()
            if content:
                drafts.append(ChunkDraft(section, content, end - start))
            if end >= len(tokens):
                break
            start = max(end - overlap, start + 1)
    return drafts


def embedding_text(*, title: str, section: str, content: str) -> str:
    """What is embedded for a chunk: its document title and heading path give it context."""
    return f"{heading_path(title, section)}\n\n{content}"

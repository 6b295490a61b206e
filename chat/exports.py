"""One thread as a file to keep: Markdown to read, JSON for programs (docs/api.md).

Both hold what a reader of the thread sees (chat.selectors.thread_messages): the
messages of the branch that is shown (chat.tree), in order, each with its role, time,
content and citations; other versions of an edited question or a regenerated answer
are left out, as on the page.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.text import slugify

from chat import selectors
from chat.models import AIThread, Message

FORMAT = "parley.thread/1"
FILENAME_CHARS = 80
ROLE_HEADINGS = {Message.Role.USER: "User", Message.Role.ASSISTANT: "Assistant"}


def export_filename(thread: AIThread, extension: str) -> str:
    """A file name from the title that any file system takes: letters, digits and dashes
    (Unicode letters too; the header carries them as `filename*`), never empty."""
    stem = slugify(thread.title, allow_unicode=True)[:FILENAME_CHARS].strip("-_")
    return f"{stem or 'conversation'}-{thread.pk}.{extension}"


def _citations(message: Message) -> list[dict[str, Any]]:
    citations = []
    for item in message.sources or []:
        if not isinstance(item, dict) or "n" not in item:
            continue
        citations.append(
            {
                "n": item["n"],
                "title": str(item.get("title", "")),
                "knowledge_id": item.get("knowledge_id"),
            }
        )
    return citations


def thread_document(*, thread: AIThread) -> dict[str, Any]:
    """The JSON export; its shape is documented in docs/api.md ("Exporting a thread")."""
    return {
        "format": FORMAT,
        "exported_at": timezone.now().isoformat(),
        "thread": {
            "id": thread.pk,
            "title": thread.title,
            "agent": thread.agent.name if thread.agent else None,
            "created_at": thread.created_at.isoformat(),
            "last_activity_at": thread.last_activity_at.isoformat(),
            "pinned": thread.pinned_at is not None,
            "archived": thread.archived_at is not None,
        },
        "messages": [_message_item(m) for m in selectors.thread_messages(thread=thread)],
    }


def _message_item(message: Message) -> dict[str, Any]:
    return {
        "id": str(message.pk),
        "role": message.role,
        "status": message.status,
        "created_at": message.created_at.isoformat(),
        "content": message.content,
        "citations": _citations(message),
    }


def thread_markdown(*, thread: AIThread) -> str:
    """The Markdown export: a heading per message with its time, the text as written
    (answers are Markdown already), and each answer's sources as a numbered list."""
    agent = thread.agent.name if thread.agent else ""
    lines = [
        f"# {thread.title or 'New conversation'}",
        "",
        f"With {agent or 'no agent'} · started {_when(thread.created_at)}"
        f" · exported {_when(timezone.now())}",
        "",
    ]
    for message in selectors.thread_messages(thread=thread):
        heading = ROLE_HEADINGS.get(message.role, message.role.title())
        if message.role == Message.Role.ASSISTANT and agent:
            heading = agent
        status = "" if message.status == Message.Status.COMPLETE else f" ({message.status})"
        lines += [f"## {heading} · {_when(message.created_at)}{status}", "", message.content, ""]
        citations = _citations(message)
        if citations:
            lines += ["Sources:", ""]
            lines += [f"{c['n']}. {c['title'] or 'Untitled'}" for c in citations]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _when(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")

"""What the clients received, held against what the database stored."""

from __future__ import annotations

from agents.tokens import count_tokens
from bench.streamslib.clients import Stream
from chat.models import Message
from ontology.models import Group
from ontology.scoping import group_scope

COUNTED = ("lost", "duplicated", "mismatched", "failed")


def stored_answers(group: Group, message_ids: list[str]) -> dict[str, tuple[str, str]]:
    with group_scope(group):
        rows = Message.objects.filter(pk__in=[pk for pk in message_ids if pk]).values_list(
            "pk", "content", "status"
        )
        return {str(pk): (content, status) for pk, content, status in rows}


def check_streams(streams: list[Stream], stored: dict[str, tuple[str, str]]) -> dict:
    """Deltas lost or repeated: seq must be 1..n exactly, text must equal the stored answer."""
    problems: list[str] = []
    lost = duplicated = mismatched = failed = 0
    for stream in streams:
        if stream.error or not stream.message_id:
            failed += 1
            problems.append(f"client {stream.index}: {stream.error or 'no run.completed'}")
            continue
        seen = set(stream.seqs)
        duplicated += len(stream.seqs) - len(seen)
        lost += max(stream.seqs) - len(seen)
        if stream.seqs != sorted(stream.seqs):
            problems.append(f"client {stream.index}: seq out of order")
        content, status = stored.get(stream.message_id, ("", "missing"))
        if content != stream.text or status != Message.Status.COMPLETE:
            mismatched += 1
            problems.append(
                f"client {stream.index}: text {len(stream.text)} chars vs stored "
                f"{len(content)} ({status})"
            )
        tokens = count_tokens(stream.text)
        if stream.usage.get("output") not in (None, tokens):
            problems.append(
                f"client {stream.index}: {tokens} tokens received, usage says "
                f"{stream.usage.get('output')} output tokens"
            )
    return {
        "lost": lost,
        "duplicated": duplicated,
        "mismatched": mismatched,
        "failed": failed,
        "problems": problems,
    }


def failures(checks: dict) -> int:
    return sum(checks[key] for key in COUNTED)

"""Files attached in a conversation from the chat box: thread-scoped knowledge.

The thread's author uploads a file; it goes through the knowledge pipeline with the same
checks and limits as the Knowledge page (type, size, the organisation's source count,
the "upload" rate bucket), and is kept as a KnowledgeSource of the thread
(`thread_id`): searched and cited in this conversation's answers only, never listed on
the Knowledge page or found from another conversation, shown to the thread's readers
(its author and the group's managers). Deleting the thread deletes its attachments.

The page follows the file's ingestion through `knowledge-status?ids=…` like the
Knowledge page does.
"""

from __future__ import annotations

from django.contrib import messages as flash
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from agents.knowledge import selectors as knowledge_selectors
from agents.knowledge import services as knowledge_services
from agents.models import KnowledgeSource
from billing.ratelimits import limit_requests
from chat.access import access_thread_by_id
from ontology.access import member_group, member_required


def attachment_payload(source: KnowledgeSource) -> dict:
    return {
        "id": source.pk,
        "title": source.title,
        "filename": source.filename,
        "status": source.status,
        "error": source.error,
        "url": reverse("knowledge-source", args=[source.pk]),
    }


def attachments_for(thread) -> list[dict]:
    return [
        attachment_payload(source)
        for source in knowledge_selectors.thread_attachments(
            group=thread.group, thread_id=thread.pk
        )
    ]


@member_required
@require_POST
@limit_requests("upload")
def attachment_add(request: HttpRequest, pk: int) -> HttpResponse:
    """Attach the uploaded file(s) (`file`) to the thread. Asked for JSON (the chat box):
    the attachments, or `{"error": sentence}` with 400; a plain form post (no script)
    goes back to the thread with the sentence."""
    wants_json = "application/json" in request.headers.get("Accept", "")
    group = member_group(request)
    thread = access_thread_by_id(group=group, user=request.user, thread_id=pk, for_write=True)
    try:
        added = knowledge_services.source_add_files(
            group=group,
            files=request.FILES.getlist("file"),
            actor=request.user,
            thread_id=thread.pk,
        )
    except ValidationError as problem:
        if not wants_json:
            flash.error(request, " ".join(problem.messages))
            return redirect("thread-detail", pk=thread.pk)
        return JsonResponse({"error": " ".join(problem.messages)}, status=400)
    if not wants_json:
        names = ", ".join(source.title for source, _ in added)
        flash.success(request, f"Attached {names}: it is being read for this conversation.")
        return redirect("thread-detail", pk=thread.pk)
    return JsonResponse(
        {
            "added": [attachment_payload(source) for source, _ in added],
            "attachments": attachments_for(thread),
        }
    )

"""Chat pages: the thread list, a thread with its history, and the small writes around it.

Answers stream over the WebSocket (`chat/consumers.py`); these views render what is
stored, so a reload shows exactly what the database holds.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages as flash
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from agents.tools.registry import TOOLS
from billing.ratelimits import limit_requests
from chat import selectors, services
from chat.access import access_message_by_id, access_thread_by_id
from chat.models import AIThread, Message
from chat.rendering import render_answer
from chat.runs import active_run_id
from ontology.access import is_manager, member_group, member_required
from ontology.errors import ErrorCode, sentence_for
from ontology.models import Thing
from ontology.selectors import things_for_group

THREADS_PER_PAGE = 30
SIDEBAR_THREADS = 20
READ_ONLY = sentence_for(ErrorCode.READ_ONLY)
NOTES = {
    Message.Status.STOPPED: "Stopped.",
    Message.Status.INTERRUPTED: "This answer was interrupted; what had arrived is kept.",
}


def _thread(request: HttpRequest, pk: int, *, write: bool = False) -> AIThread:
    return access_thread_by_id(
        group=member_group(request), user=request.user, thread_id=pk, for_write=write
    )


def _message(
    request: HttpRequest, pk: int, message_id: uuid.UUID, *, write: bool = False
) -> tuple[AIThread, Message]:
    return access_message_by_id(
        group=member_group(request),
        user=request.user,
        thread_id=pk,
        message_id=message_id,
        for_write=write,
    )


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@member_required
@require_GET
def thread_list(request: HttpRequest) -> HttpResponse:
    group = member_group(request)
    query = request.GET.get("q", "")[:200]
    everyone = request.GET.get("all") == "1" and is_manager(group)
    threads = selectors.threads_for_list(
        group=group, user=request.user, query=query, everyone=everyone
    )
    page = Paginator(threads, THREADS_PER_PAGE).get_page(request.GET.get("page"))
    kept = [(name, value) for name, value in (("q", query), ("all", everyone and "1")) if value]
    return render(
        request,
        "chat/thread_list.html",
        {
            "page": page,
            "query": query,
            "everyone": everyone,
            "pager_query": urlencode(kept),
            "may_see_everyone": is_manager(group),
            "agents": things_for_group(group=group, type=Thing.Type.AGENT),
        },
    )


@member_required
@require_POST
@limit_requests("chat")
def thread_new(request: HttpRequest) -> HttpResponse:
    group = member_group(request)
    agent = (
        things_for_group(group=group, type=Thing.Type.AGENT)
        .filter(pk=request.POST.get("agent") if str(request.POST.get("agent")).isdigit() else 0)
        .first()
    )
    if agent is None:
        flash.error(request, "Pick one of your organisation's agents to start a chat.")
        return redirect("thread-list")
    try:
        thread = services.thread_start(group=group, agent=agent, user=request.user)
    except ValidationError as problem:
        flash.error(request, " ".join(problem.messages))
        return redirect("thread-list")
    return redirect("thread-detail", pk=thread.pk)


@member_required
@require_GET
@ensure_csrf_cookie
def thread_detail(request: HttpRequest, pk: int) -> HttpResponse:
    group = member_group(request)
    thread = _thread(request, pk)
    history = selectors.thread_messages(thread=thread)
    last = history[-1] if history else None
    last_answer = last.pk if last is not None and last.role == Message.Role.ASSISTANT else None
    writable = selectors.may_write(thread=thread, user=request.user)
    return render(
        request,
        "chat/thread.html",
        {
            "thread": thread,
            "writable": writable,
            "read_only_note": "" if writable else READ_ONLY,
            "items": [_present(m, last_answer=last_answer, writable=writable) for m in history],
            "recent": selectors.threads_for_list(group=group, user=request.user)[:SIDEBAR_THREADS],
            "max_chars": settings.PARLEY_MAX_MESSAGE_CHARS,
            "tool_labels": {
                name: {"running": spec.running_label, "label": spec.label}
                for name, spec in TOOLS.items()
            },
            "agent_name": thread.agent.name if thread.agent else "Agent",
            "settled_run_id": _settled_run_id(thread),
        },
    )


@member_required
@require_GET
def message_fragment(request: HttpRequest, pk: int, message_id: uuid.UUID) -> HttpResponse:
    """One message as the history shows it: what the page swaps in when an answer ends."""
    thread, message = _message(request, pk, message_id)
    item = _present(
        message,
        last_answer=selectors.last_answer_id(thread=thread),
        writable=selectors.may_write(thread=thread, user=request.user),
    )
    return render(request, "chat/_message.html", {"item": item})


@member_required
@require_POST
@limit_requests("chat")
def thread_rename(request: HttpRequest, pk: int) -> HttpResponse:
    thread = _thread(request, pk, write=True)
    try:
        title = request.POST.get("title", "")
        services.thread_rename(thread=thread, title=title, actor=request.user)
    except ValidationError as problem:
        if _wants_json(request):
            return JsonResponse({"error": " ".join(problem.messages)}, status=400)
        flash.error(request, " ".join(problem.messages))
        return redirect("thread-detail", pk=thread.pk)
    if _wants_json(request):
        return JsonResponse({"title": thread.title})
    return redirect("thread-detail", pk=thread.pk)


@member_required
@require_POST
@limit_requests("chat")
def message_feedback(request: HttpRequest, pk: int, message_id: uuid.UUID) -> HttpResponse:
    thread, message = _message(request, pk, message_id, write=True)
    wanted = request.POST.get("feedback", "")
    if wanted == message.feedback:
        wanted = ""  # pressing the same thumb again takes the vote back
    try:
        services.message_feedback_set(message=message, feedback=wanted, actor=request.user)
    except ValidationError as problem:
        if _wants_json(request):
            return JsonResponse({"error": " ".join(problem.messages)}, status=400)
        flash.error(request, " ".join(problem.messages))
    if _wants_json(request):
        return JsonResponse({"feedback": message.feedback})
    return redirect(f"{thread.get_absolute_url()}#m-{message.pk}")


def _settled_run_id(thread: AIThread) -> str:
    """The latest run if it has ended: the page shows it from the database, not the stream."""
    latest = selectors.latest_run_id(thread=thread)
    if latest is None or str(latest) == active_run_id(thread.pk):
        return ""
    return str(latest)


def _tool_label(name: str) -> str:
    spec = TOOLS.get(name)
    return spec.label if spec else name


def _present(message: Message, *, last_answer: uuid.UUID | None, writable: bool) -> dict[str, Any]:
    """What the message template needs: safe HTML, tool chips, sources, notes, actions
    (a reader who is not the thread's author gets no actions that write)."""
    item: dict[str, Any] = {
        "message": message,
        "is_last": message.pk == last_answer,
        "writable": writable,
    }
    if message.role != Message.Role.ASSISTANT:
        return item
    rendered = render_answer(message.content, sources=message.sources)
    item.update(
        html=rendered.html,
        follow_ups=rendered.follow_ups if item["is_last"] else [],
        streaming=message.status == Message.Status.STREAMING,
        tools=[
            {
                "label": _tool_label(call.get("name", "")),
                "ok": call.get("ok", False),
                "summary": call.get("summary", ""),
            }
            for call in message.tool_calls
        ],
        note=NOTES.get(message.status, ""),
        error=sentence_for(message.error_code) if message.status == Message.Status.ERROR else "",
        may_regenerate=writable and item["is_last"] and message.status != Message.Status.STREAMING,
    )
    return item

"""Chat pages: the thread list, a thread with its history, and the small writes around it.

Answers stream over the WebSocket (`chat/consumers.py`); these views render what is
stored, so a reload shows exactly what the database holds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from agents.tools.registry import TOOLS
from billing.ratelimits import limit_requests
from chat import exports, selectors, services
from chat.access import access_message_by_id, access_share_by_token, access_thread_by_id
from chat.attachments import attachments_for
from chat.models import AIThread, Message
from chat.rendering import render_answer
from chat.runs import active_run_id
from ontology.access import is_manager, member_group, member_required
from ontology.account_pages import default_agent_id
from ontology.errors import ErrorCode, sentence_for
from ontology.models import Thing
from ontology.scoping import group_scope
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
    archived = request.GET.get("view") == "archived"
    threads = selectors.threads_for_list(
        group=group, user=request.user, query=query, everyone=everyone, archived=archived
    )
    page = Paginator(threads, THREADS_PER_PAGE).get_page(request.GET.get("page"))
    wanted = (("q", query), ("all", everyone and "1"), ("view", archived and "archived"))
    kept = [(name, value) for name, value in wanted if value]
    agents = list(things_for_group(group=group, type=Thing.Type.AGENT))
    return render(
        request,
        "chat/thread_list.html",
        {
            "page": page,
            "query": query,
            "everyone": everyone,
            "archived": archived,
            "here": request.get_full_path(),
            "pager_query": urlencode(kept),
            "may_see_everyone": is_manager(group),
            "agents": agents,
            "chosen_agent_id": _chosen_agent(request.user, group, agents),
        },
    )


def _chosen_agent(user, group, agents) -> int | None:
    """The agent a new chat starts with: the person's default in this group (their
    profile) while it is still one of the group's, else the first."""
    ids = [agent.pk for agent in agents]
    default = default_agent_id(user, group)
    return default if default in ids else (ids[0] if ids else None)


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
            "share": selectors.live_share(thread=thread) if writable else None,
            "agents": list(things_for_group(group=group, type=Thing.Type.AGENT))
            if writable
            else [],
            "attachments": attachments_for(thread),
        },
    )


@member_required
@require_GET
def message_fragment(request: HttpRequest, pk: int, message_id: uuid.UUID) -> HttpResponse:
    """One message as the history shows it: what the page swaps in when an answer ends."""
    thread, message = _message(request, pk, message_id)
    steps = selectors.thread_path(thread=thread)
    for step in steps:
        if step.id == message.pk:
            message.branch = step  # its < n/m >, when it is on the shown branch
    is_last_answer = (
        bool(steps) and steps[-1].id == message.pk and message.role == Message.Role.ASSISTANT
    )
    item = _present(
        message,
        last_answer=message.pk if is_last_answer else None,
        writable=selectors.may_write(thread=thread, user=request.user),
    )
    return render(request, "chat/_message.html", {"item": item})


@member_required
@require_GET
def thread_path_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    """The shown branch after message `?after=` (from the start without it), as the history
    shows it: what every tab fetches when the branch is switched (`thread.branched`)."""
    thread = _thread(request, pk)
    try:
        after = uuid.UUID(request.GET["after"]) if request.GET.get("after") else None
    except ValueError:
        raise Http404("No such message.") from None
    history = selectors.thread_messages(thread=thread, after=after)
    writable = selectors.may_write(thread=thread, user=request.user)
    last = history[-1] if history else None  # the branch's end, when anything follows `after`
    last_answer = last.pk if last is not None and last.role == Message.Role.ASSISTANT else None
    items = [_present(m, last_answer=last_answer, writable=writable) for m in history]
    return render(request, "chat/_messages.html", {"items": items})


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


# --- Managing a thread: delete, archive, pin, export, share ----------------------------


@member_required
@require_http_methods(["GET", "POST"])
@limit_requests("chat")
def thread_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation (a page, so it works without JavaScript); POST deletes."""
    thread = _thread(request, pk, write=True)
    if request.method == "GET":
        count = len(selectors.thread_messages(thread=thread))
        return render(request, "chat/thread_delete.html", {"thread": thread, "count": count})
    try:
        deleted = services.thread_delete(thread=thread, actor=request.user)
    except ValidationError as problem:
        flash.error(request, " ".join(problem.messages))
        return redirect("thread-detail", pk=pk)
    flash.success(request, f"Deleted “{deleted.title}”.")
    return redirect("thread-list")


def _filing_view(name: str, change: Callable[..., AIThread], flag: str, on: bool, said: str):
    """A POST that files a thread (archive, pin and their reverses): the thread's author
    only, counted in the "chat" bucket, then back where the form came from. `said` is the
    confirmation, with `{thread}` for its title."""

    def view(request: HttpRequest, pk: int) -> HttpResponse:
        thread = _thread(request, pk, write=True)
        change(thread=thread, actor=request.user, **{flag: on})
        flash.success(request, said.format(thread=thread))
        return _back(request, thread)

    view.__name__ = view.__qualname__ = name
    return member_required(require_POST(limit_requests("chat")(view)))


thread_archive = _filing_view(
    "thread_archive",
    services.thread_archive,
    "archived",
    True,
    "Archived “{thread}”. Find it under Archived.",
)
thread_unarchive = _filing_view(
    "thread_unarchive",
    services.thread_archive,
    "archived",
    False,
    "“{thread}” is back in your conversations.",
)
thread_pin = _filing_view(
    "thread_pin",
    services.thread_pin,
    "pinned",
    True,
    "Pinned “{thread}” to the top of your conversations.",
)
thread_unpin = _filing_view(
    "thread_unpin", services.thread_pin, "pinned", False, "Unpinned “{thread}”."
)


def _back(request: HttpRequest, thread: AIThread) -> HttpResponse:
    """Where the form came from (`next`, same site only), else the thread."""
    wanted = request.POST.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(wanted)
    return redirect("thread-detail", pk=thread.pk)


@member_required
@require_GET
def thread_export_markdown(request: HttpRequest, pk: int) -> HttpResponse:
    thread = _thread(request, pk)
    body = exports.thread_markdown(thread=thread)
    return _download(body, "text/markdown; charset=utf-8", exports.export_filename(thread, "md"))


@member_required
@require_GET
def thread_export_json(request: HttpRequest, pk: int) -> HttpResponse:
    thread = _thread(request, pk)
    document = exports.thread_document(thread=thread)
    body = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    return _download(body, "application/json", exports.export_filename(thread, "json"))


def _download(body: str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["X-Content-Type-Options"] = "nosniff"
    return response


@member_required
@require_POST
@limit_requests("chat")
def thread_share(request: HttpRequest, pk: int) -> HttpResponse:
    thread = _thread(request, pk, write=True)
    share = services.thread_share(thread=thread, actor=request.user)
    link = request.build_absolute_uri(share.get_absolute_url())
    flash.success(request, f"Anyone in {thread.group} can now read this conversation at {link}")
    return redirect(f"{reverse('thread-detail', args=[thread.pk])}#share")


@member_required
@require_POST
@limit_requests("chat")
def thread_share_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    thread = _thread(request, pk, write=True)
    if services.thread_share_revoke(thread=thread, actor=request.user):
        flash.success(request, "The link no longer opens this conversation.")
    else:
        flash.info(request, "This conversation was not shared.")
    return redirect("thread-detail", pk=thread.pk)


@login_required
@require_GET
def shared_thread(request: HttpRequest, token: str) -> HttpResponse:
    """A shared thread, read-only, for any member of its group (a 404 for anyone else)."""
    share = access_share_by_token(user=request.user, token=token)
    thread = share.thread
    with group_scope(share.group):
        history = selectors.thread_messages(thread=thread)
    return render(
        request,
        "chat/shared_thread.html",
        {
            "thread": thread,
            "share": share,
            "items": [_present(m, last_answer=None, writable=False) for m in history],
            "agent_name": thread.agent.name if thread.agent else "Agent",
            "may_open": selectors.may_write(thread=thread, user=request.user),
        },
    )


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

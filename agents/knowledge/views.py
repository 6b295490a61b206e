"""The Knowledge pages: sources and their live status, adding and deleting them, chunks.

Members of the active group read; its owners and admins add, retry and delete.
Every lookup is scoped to the active group: another group's id is a 404. Adding and
retrying are uploads (PARLEY_HTTP_RATE_LIMITS["upload"]), counted once the request is
known to be an admin's, so a member's refused posts cannot use up the group's allowance.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from agents.knowledge import selectors, services
from agents.knowledge.forms import EmbeddingModelForm, KnowledgeAddForm, add_knowledge
from agents.knowledge.ingestion.chunk import heading_path, without_title
from agents.knowledge.retrieval import group_embedding_model
from agents.models import KnowledgeSource
from billing.ratelimits import check_limits
from ontology.access import (
    is_manager,
    manager_group,
    manager_required,
    member_group,
    member_required,
)
from ontology.tenant_admin import apply_service_errors

SOURCES_PER_PAGE = 50


def _source(request: HttpRequest, pk: int) -> KnowledgeSource:
    """The active group's source; another group's id is a 404, like a missing one."""
    source = selectors.knowledge_source(group=member_group(request), user=request.user, pk=pk)
    if source is None:
        raise Http404("No such source.")
    return source


def _status_item(source: KnowledgeSource) -> dict:
    return {
        "id": source.pk,
        "status": source.status,
        "label": source.get_status_display(),
        "chunks": source.chunk_count,
        "progress": source.progress,
        "error": source.error,
        "title": source.title,
    }


@member_required
def knowledge_list(request: HttpRequest) -> HttpResponse:
    group = member_group(request)
    manages = is_manager(group)
    add_form = KnowledgeAddForm()
    if request.method == "POST":
        group = manager_group(request)
        refusal = check_limits(request, "upload")
        if refusal is not None:
            return refusal
        add_form = KnowledgeAddForm(request.POST, request.FILES)
        if add_form.is_valid():
            try:
                added = add_knowledge(group=group, data=add_form.cleaned_data, actor=request.user)
            except ValidationError as error:
                apply_service_errors(add_form, error)
            else:
                for source, created in added:
                    if created:
                        messages.success(request, f"Added “{source.title}”; ingesting it now.")
                    else:
                        messages.info(
                            request, f"“{source.title}” is already here; not added again."
                        )
                return redirect("knowledge-list")
    page = Paginator(selectors.knowledge_sources(group=group), SOURCES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {
        "page": page,
        "sources": page.object_list,
        "indexes": selectors.embedding_indexes(group=group),
        "manages": manages,
        "add_form": add_form,
        "model_form": EmbeddingModelForm(initial={"model": group_embedding_model(group)}),
        "group_model": group_embedding_model(group),
        "busy": selectors.knowledge_busy(group=group),
    }
    return render(
        request, "agents/knowledge_list.html", context, status=400 if add_form.errors else 200
    )


@member_required
@require_GET
def knowledge_status(request: HttpRequest) -> JsonResponse:
    """What the Knowledge page polls while something is being ingested: the sources on its
    page (`?ids=1,2,3`), or without ids the ones still being ingested."""
    group = member_group(request)
    ids = _ids(request.GET.get("ids"))
    sources = selectors.knowledge_source_states(group=group, user=request.user, ids=ids)
    return JsonResponse(
        {
            "busy": selectors.knowledge_busy(group=group),
            "sources": [_status_item(s) for s in sources],
        }
    )


def _ids(value: str | None) -> list[int] | None:
    """A poll's source ids (a page's worth at most); None when it names none."""
    if value is None:
        return None
    return [int(part) for part in value.split(",") if part.strip().isdigit()][:SOURCES_PER_PAGE]


@manager_required
@require_POST
def knowledge_model(request: HttpRequest) -> HttpResponse:
    group = member_group(request)
    form = EmbeddingModelForm(request.POST)
    if form.is_valid():
        services.embedding_model_set(
            group=group, model=form.cleaned_data["model"], actor=request.user
        )
        messages.success(
            request,
            f"Embedding with {form.cleaned_data['model']} in the "
            "background; the current vectors answer until it is done.",
        )
    else:
        messages.error(request, "Pick an embedding model from the list.")
    return redirect("knowledge-list")


@member_required
@require_GET
def knowledge_source_detail(request: HttpRequest, pk: int) -> HttpResponse:
    group = member_group(request)
    source = _source(request, pk)
    chunks = selectors.source_chunks(group=group, source=source)
    context = {"source": source, "chunks": chunks, "manages": is_manager(group)}
    return render(request, "agents/knowledge_source.html", context)


@manager_required
@require_POST
def knowledge_source_delete(request: HttpRequest, pk: int) -> HttpResponse:
    source = _source(request, pk)
    services.source_delete(source=source, actor=request.user)
    messages.success(request, f"Deleted “{source.title}” and its chunks.")
    return redirect("knowledge-list")


@manager_required
@require_POST
def knowledge_source_retry(request: HttpRequest, pk: int) -> HttpResponse:
    source = _source(request, pk)
    refusal = check_limits(request, "upload")
    if refusal is not None:
        return refusal
    try:
        services.source_retry(source=source, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("knowledge-source", pk=source.pk)


@member_required
@require_GET
def knowledge_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One chunk, shown within its source: where a citation [n] in the chat leads."""
    group = member_group(request)
    chunk = selectors.knowledge_chunk(group=group, user=request.user, pk=pk)
    if chunk is None:
        raise Http404("No such knowledge.")
    neighbours = selectors.source_chunks(group=group, source=chunk.source).filter(
        position__gte=chunk.position - 1, position__lte=chunk.position + 1
    )
    context = {
        "knowledge": chunk,
        "source": chunk.source,
        "neighbours": neighbours,
        "heading": heading_path(chunk.title, chunk.section),
        "section": without_title(chunk.source.title, chunk.section),
    }
    return render(request, "agents/knowledge_detail.html", context)

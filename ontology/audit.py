"""The Audit page: a group's Events for its owners and admins, filtered, paginated, exportable.

Events are append-only; nothing here writes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from django import forms
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ontology.access import manager_required, member_group
from ontology.exports import csv_download
from ontology.models import Group, Membership
from ontology.selectors import event_types, events_for_group

EVENTS_PER_PAGE = 50


class AuditFilterForm(forms.Form):
    type = forms.ChoiceField(required=False)
    actor = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, group: Group, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["type"].choices = [("", "Any type")] + [
            (t, t) for t in event_types(group=group)
        ]
        members = Membership.objects.filter(group=group).select_related("user")
        self.fields["actor"].choices = [("", "Anyone")] + [
            (m.user_id, str(m.user)) for m in members
        ]

    def filters(self) -> dict[str, Any]:
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        return {
            "type": data.get("type") or "",
            "actor_id": data.get("actor"),
            "start": data.get("start"),
            "end": data.get("end"),
        }


@manager_required
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    group = member_group(request)
    form = AuditFilterForm(request.GET or None, group=group)
    events = events_for_group(group=group, **form.filters())
    page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "ontology/audit.html",
        {
            "group": group,
            "form": form,
            "page": page,
            "query": query.urlencode(),
        },
    )


@manager_required
@require_GET
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    group = member_group(request)
    form = AuditFilterForm(request.GET or None, group=group)
    events = events_for_group(group=group, **form.filters())

    async def rows() -> AsyncIterator[list[Any]]:
        yield ["timestamp", "type", "actor", "target_type", "target_id", "target", "metadata"]
        async for event in events.aiterator(chunk_size=2000):
            yield [
                event.timestamp.isoformat(),
                event.type,
                event.actor.username if event.actor else "",
                event.target_type,
                event.target_id,
                event.target_label,
                json.dumps(event.metadata, ensure_ascii=False, sort_keys=True),
            ]

    return csv_download(f"parley-audit-{group.slug}.csv", rows())

"""Usage pages for a group's owners and admins, and the platform view for superusers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing import charts, selectors
from billing.forms import PRESETS, CallsFilterForm, PeriodForm, StatementForm
from billing.templatetags.billing import money, tokens
from ontology.access import is_manager, superuser_required
from ontology.exports import csv_download, csv_file
from ontology.models import Group, Thing
from ontology.scoping import group_scope
from ontology.selectors import things_for_group

CALLS_PER_PAGE = 50


def usage_access(view: Callable) -> Callable:
    """Resolve the group whose usage is asked for and run the view in its scope.

    Owners and admins see their active group; members get 403. Superusers may
    name any group with ?group=<id>. Anyone else naming a group gets 404.
    """

    @login_required
    @require_GET
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wanted = request.GET.get("group")
        if request.user.is_superuser and wanted:
            group = Group.objects.filter(pk=wanted).first() if wanted.isdigit() else None
        else:
            group = request.group
            if group is not None and not (request.user.is_superuser or is_manager(group)):
                raise PermissionDenied("Only owners and admins can see usage.")
        if group is None:
            raise Http404("No such organisation.")
        with group_scope(group):
            return view(request, group, *args, **kwargs)

    return wrapped


def _showing(request: HttpRequest, start, end) -> QueryDict:
    """The query with the period spelled out, so the date fields show what is on the page."""
    data = request.GET.copy()
    data.pop("preset", None)
    data["start"], data["end"] = start.isoformat(), end.isoformat()
    return data


def _group_query(request: HttpRequest, group: Group) -> str:
    """The ?group= part superusers need to stay on another tenant's pages."""
    return f"group={group.pk}" if request.GET.get("group") else ""


@usage_access
def dashboard(request: HttpRequest, group: Group) -> HttpResponse:
    form = PeriodForm(request.GET or None)
    start, end = form.period()
    if not form.errors:
        form = PeriodForm(_showing(request, start, end))
    report = selectors.usage_report(group=group, start=start, end=end)
    plan = selectors.plan_for(group)
    cost, token_count = (lambda line: line.totals.cost), (lambda line: line.totals.tokens)
    context = {
        "group": group,
        "form": form,
        "presets": PRESETS,
        "report": report,
        "plan": plan,
        "budget": selectors.budget_status(group=group, plan=plan),
        "group_query": _group_query(request, group),
        "day_cost": charts.columns(
            "cost-by-day", "Cost per day", report.by_day, value=cost, display=money
        ),
        "day_tokens": charts.columns(
            "tokens-by-day", "Tokens per day", report.by_day, value=token_count, display=tokens
        ),
        "by_model": charts.rows(
            "cost-by-model", "Cost by model", report.by_model, value=cost, display=money
        ),
        "by_agent": charts.rows(
            "cost-by-agent", "Cost by agent", report.by_agent, value=cost, display=money
        ),
        "by_user": charts.rows(
            "cost-by-user", "Cost by person", report.by_user, value=cost, display=money
        ),
    }
    return render(request, "billing/usage.html", context)


def _calls_form(request: HttpRequest, group: Group, data=None) -> CallsFilterForm:
    return CallsFilterForm(
        data or request.GET or None,
        models=selectors.ledger_models(group=group),
        agents=list(things_for_group(group=group, type=Thing.Type.AGENT, active_only=False)),
        users=list(selectors.group_members(group=group)),
    )


@usage_access
def calls(request: HttpRequest, group: Group) -> HttpResponse:
    form = _calls_form(request, group)
    start, end = form.period()
    ledger = selectors.calls_for(group=group, start=start, end=end, **form.filters())
    if not form.errors:
        form = _calls_form(request, group, data=_showing(request, start, end))
    page = Paginator(ledger, CALLS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "billing/calls.html",
        {
            "group": group,
            "form": form,
            "page": page,
            "start": start,
            "end": end,
            "query": query.urlencode(),
            "group_query": _group_query(request, group),
        },
    )


LEDGER_COLUMNS = [
    "created_at",
    "id",
    "run_id",
    "purpose",
    "provider",
    "model",
    "agent",
    "user",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "usage_exact",
    "input_price",
    "output_price",
    "cached_price",
    "cost",
    "status",
    "error_code",
    "latency_ms",
    "ttft_ms",
]


@usage_access
def ledger_csv(request: HttpRequest, group: Group) -> StreamingHttpResponse:
    form = _calls_form(request, group)
    start, end = form.period()
    ledger = selectors.calls_for(group=group, start=start, end=end, **form.filters())

    async def rows() -> AsyncIterator[list[Any]]:
        yield LEDGER_COLUMNS
        # Built in the group's scope, the queryset keeps its group filter while it streams.
        async for call in ledger.aiterator(chunk_size=2000):
            yield [
                call.created_at.isoformat(),
                call.id,
                call.run_id or "",
                call.purpose,
                call.provider,
                call.model,
                call.agent.name if call.agent else "",
                call.user.username if call.user else "",
                call.input_tokens,
                call.cached_tokens,
                call.output_tokens,
                call.usage_exact,
                call.input_price,
                call.output_price,
                call.cached_price,
                call.cost,
                call.status,
                call.error_code,
                call.latency_ms,
                call.ttft_ms or "",
            ]

    return csv_download(f"parley-ledger-{group.slug}-{start}-{end}.csv", rows())


@usage_access
def statement_csv(request: HttpRequest, group: Group) -> StreamingHttpResponse:
    month = StatementForm(request.GET or None).month_value()
    statement = selectors.monthly_statement(group=group, month=month)

    rows: list[list[Any]] = [
        ["Parley monthly statement"],
        ["Organisation", group.name],
        ["Period", statement.period_start.isoformat(), statement.period_end.isoformat()],
        ["Currency", "USD"],
        [],
        [
            "Provider",
            "Model",
            "Calls",
            "Input tokens",
            "Cached input tokens",
            "Output tokens",
            "Cost",
        ],
    ]
    for line in statement.lines:
        provider, model = line.key
        t = line.totals
        rows.append(
            [provider, model, t.calls, t.input_tokens, t.cached_tokens, t.output_tokens, t.cost]
        )
    t = statement.totals
    rows.append(["Total", "", t.calls, t.input_tokens, t.cached_tokens, t.output_tokens, t.cost])
    rows.append(["Amount due", "", "", "", "", "", statement.amount_due])
    return csv_file(f"parley-statement-{group.slug}-{month:%Y-%m}.csv", rows)


@superuser_required
@require_GET
def platform(request: HttpRequest) -> HttpResponse:
    """Every tenant's usage and the platform total: superusers only."""
    form = PeriodForm(request.GET or None)
    start, end = form.period()
    if not form.errors:
        form = PeriodForm(_showing(request, start, end))
    tenants, total = selectors.platform_usage(start=start, end=end)
    lines = [selectors.Line(t.group.pk, t.group.name, t.totals) for t in tenants]
    chart = charts.rows(
        "cost-by-tenant",
        "Cost by organisation",
        lines,
        value=lambda line: line.totals.cost,
        display=money,
        limit=20,
    )
    return render(
        request,
        "billing/platform.html",
        {
            "form": form,
            "presets": PRESETS,
            "tenants": tenants,
            "total": total,
            "start": start,
            "end": end,
            "chart": chart,
        },
    )

"""Usage and Audit pages: owners and admins only, one tenant at a time, superusers see all."""

import csv
import io
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.urls import reverse

from billing.models import AICall
from ontology import services
from ontology.models import Event, Membership
from ontology.scoping import group_scope
from tests.billing.conftest import spend
from tests.conftest import make_user, set_plan

pytestmark = pytest.mark.django_db

PAGES = [
    "billing:usage",
    "billing:calls",
    "billing:ledger-csv",
    "billing:statement-csv",
    "audit",
    "audit-export",
]


def content(response) -> str:
    """The body; CSV downloads stream asynchronously (as daphne serves them)."""
    if not response.streaming:
        return response.content.decode()

    async def collect():
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)().decode()


@pytest.fixture
def two_ledgers(tenant_a, tenant_b):
    spend(tenant_a.group, "0.250", model="alpha-model-x", user=tenant_a.member)
    spend(tenant_a.group, "0.050", model="alpha-model-y", user=tenant_a.owner)
    spend(tenant_b.group, "0.400", model="bravo-model-z", user=tenant_b.member)
    for tenant in (tenant_a, tenant_b):
        services.group_update(
            group=tenant.group, actor=tenant.owner, name=f"{tenant.group.name} renamed"
        )


@pytest.mark.parametrize("page", PAGES)
def test_a_member_gets_403_and_a_stranger_404(client, tenant_a, page):
    client.force_login(tenant_a.member)
    assert client.get(reverse(page)).status_code == 403
    client.force_login(make_user("nobody@example.com"))
    assert client.get(reverse(page)).status_code == 404


@pytest.mark.parametrize("page", PAGES)
def test_another_tenants_admin_never_sees_these_rows(client, two_ledgers, tenant_a, tenant_b, page):
    client.force_login(tenant_b.owner)
    # Naming the other group is ignored for anyone but a superuser.
    response = client.get(reverse(page), {"group": tenant_a.group.pk})
    assert response.status_code == 200
    text = content(response)
    assert "alpha-model" not in text and "Alpha Inc" not in text
    if page.startswith("billing:"):
        assert "bravo-model-z" in text


def test_the_usage_page_shows_totals_charts_and_breakdowns(client, two_ledgers, tenant_a):
    client.force_login(tenant_a.owner)
    response = client.get(reverse("billing:usage"))
    assert response.status_code == 200
    report = response.context["report"]
    assert report.totals.cost == Decimal("0.3") and report.totals.calls == 2
    text = content(response)
    for chart in ("cost-by-day", "tokens-by-day", "cost-by-model", "cost-by-agent", "cost-by-user"):
        assert f'data-chart="{chart}"' in text
    assert 'data-label="alpha-model-x (simulator)" data-value="0.25000000"' in text
    assert 'data-total="cost">$0.3000<' in text
    assert str(tenant_a.member) in text


def test_the_calls_table_filters_and_exports(client, two_ledgers, tenant_a):
    client.force_login(tenant_a.owner)
    response = client.get(reverse("billing:calls"), {"model": "alpha-model-y"})
    assert [call.model for call in response.context["page"]] == ["alpha-model-y"]
    response = client.get(reverse("billing:calls"), {"user": tenant_a.member.pk})
    assert [call.model for call in response.context["page"]] == ["alpha-model-x"]
    response = client.get(reverse("billing:ledger-csv"), {"user": tenant_a.member.pk})
    rows = list(csv.DictReader(io.StringIO(content(response))))
    assert [(r["model"], r["cost"], r["user"]) for r in rows] == [
        ("alpha-model-x", "0.25000000", tenant_a.member.username)
    ]
    everything = client.get(reverse("billing:ledger-csv"))
    rows = list(csv.DictReader(io.StringIO(content(everything))))
    with group_scope(tenant_a.group):
        assert {r["id"] for r in rows} == {
            str(pk) for pk in AICall.objects.values_list("pk", flat=True)
        }


def test_the_calls_table_pages_keep_the_filter(client, tenant_a, monkeypatch):
    monkeypatch.setattr("billing.views.CALLS_PER_PAGE", 2)
    for _ in range(3):
        spend(tenant_a.group, "0.010", model="alpha-model-z")
    client.force_login(tenant_a.owner)
    first = client.get(reverse("billing:calls"), {"model": "alpha-model-z"})
    assert 'href="?page=2&amp;model=alpha-model-z">Older' in content(first)
    second = client.get(reverse("billing:calls"), {"model": "alpha-model-z", "page": 2})
    assert len(second.context["page"]) == 1


def test_a_superuser_sees_every_tenant_and_the_platform_total(
    client, two_ledgers, tenant_a, tenant_b, superuser
):
    client.force_login(superuser)
    response = client.get(reverse("billing:platform"))
    assert response.status_code == 200
    tenants = {t.group.pk: t.totals.cost for t in response.context["tenants"]}
    assert tenants == {tenant_a.group.pk: Decimal("0.3"), tenant_b.group.pk: Decimal("0.4")}
    assert response.context["total"].cost == Decimal("0.7")
    assert 'data-chart="cost-by-tenant"' in content(response)
    other = client.get(reverse("billing:usage"), {"group": tenant_b.group.pk})
    assert "bravo-model-z" in content(other)
    client.force_login(tenant_a.owner)
    assert client.get(reverse("billing:platform")).status_code == 404


def test_the_audit_page_filters_by_type_actor_and_date_newest_first(client, two_ledgers, tenant_a):
    client.force_login(tenant_a.owner)
    response = client.get(reverse("audit"))
    events = list(response.context["page"])
    assert events == sorted(events, key=lambda e: (e.timestamp, e.pk), reverse=True)
    assert {e.group_id for e in events} == {tenant_a.group.pk}
    renamed = client.get(reverse("audit"), {"type": "group.updated"})
    assert [e.type for e in renamed.context["page"]] == ["group.updated"]
    by_owner = client.get(reverse("audit"), {"actor": tenant_a.owner.pk})
    assert {e.actor_id for e in by_owner.context["page"]} == {tenant_a.owner.pk}
    future = client.get(reverse("audit"), {"start": "2999-01-01"})
    assert list(future.context["page"]) == []
    export = client.get(reverse("audit-export"), {"type": "group.updated"})
    rows = list(csv.DictReader(io.StringIO(content(export))))
    assert [r["type"] for r in rows] == ["group.updated"]
    assert "Alpha Inc renamed" in rows[0]["metadata"]


def test_the_audit_page_is_paginated(client, tenant_a):
    with group_scope(tenant_a.group):
        for n in range(60):
            services.event_record(
                group=tenant_a.group, type="thread.renamed", actor=tenant_a.owner, metadata={"n": n}
            )
    client.force_login(tenant_a.owner)
    first = client.get(reverse("audit"), {"type": "thread.renamed"})
    second = client.get(reverse("audit"), {"type": "thread.renamed", "page": 2})
    assert [e.metadata["n"] for e in first.context["page"]] == list(range(59, 9, -1))
    assert [e.metadata["n"] for e in second.context["page"]] == list(range(9, -1, -1))


def test_the_budget_banner_shows_owners_at_eighty_percent(client, tenant_a):
    set_plan("free", monthly_budget=Decimal("1.00"))
    spend(tenant_a.group, "0.790")
    client.force_login(tenant_a.owner)
    assert "budget-banner" not in content(client.get(reverse("thread-list")))
    spend(tenant_a.group, "0.060")
    page = content(client.get(reverse("thread-list")))
    assert 'data-budget-percent="85"' in page and "85 % of this month" in page
    client.force_login(tenant_a.member)
    assert "budget-banner" not in content(client.get(reverse("thread-list")))


def test_login_and_failed_login_are_audited_in_each_of_the_users_groups(client, tenant_a, tenant_b):
    services.membership_create(
        group=tenant_b.group,
        user=tenant_a.member,
        role=Membership.Role.MEMBER,
        actor=tenant_b.owner,
    )
    username = tenant_a.member.username
    client.post(reverse("login"), {"username": username, "password": "wrong"})
    client.post(reverse("login"), {"username": username, "password": "pw-" + username})
    client.post(reverse("login"), {"username": "ghost@example.com", "password": "x"})
    for tenant in (tenant_a, tenant_b):
        with group_scope(tenant.group):
            events = list(
                Event.objects.filter(type__startswith="auth.").order_by("timestamp", "id")
            )
        assert [(e.type, e.target_id) for e in events] == [
            ("auth.login_failed", str(tenant_a.member.pk)),
            ("auth.login", str(tenant_a.member.pk)),
        ]
        assert events[0].actor is None and events[1].actor == tenant_a.member
        assert events[1].metadata["ip"] == "127.0.0.1"

"""The Usage and Audit pages in Chromium: charts drawn with their data points, filters work."""

from decimal import Decimal

import pytest
from django.utils import timezone

from billing.selectors import month_start
from tests.billing.conftest import spend
from tests.browser.conftest import log_in
from tests.conftest import set_plan

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_usage_page_draws_its_charts_with_the_ledgers_figures(page, tenant_a, tenant_b):
    spend(tenant_a.group, "0.300", model="alpha-large", user=tenant_a.member, agent=tenant_a.agent)
    spend(tenant_a.group, "0.100", model="alpha-small", user=tenant_a.owner)
    spend(tenant_b.group, "0.900", model="bravo-secret", user=tenant_b.member)
    log_in(page, tenant_a.owner)
    page.get_by_role("link", name="Usage").click()
    page.wait_for_url("**/usage/")

    days = page.locator('[data-chart="cost-by-day"] rect.bar')
    today = timezone.localdate()
    assert days.count() == (today - month_start(today)).days + 1
    today_bar = days.last
    assert Decimal(today_bar.get_attribute("data-value")) == Decimal("0.4")
    assert today_bar.bounding_box()["height"] > 50  # the tallest column fills the plot

    models = page.locator('[data-chart="cost-by-model"] rect.bar')
    assert models.count() == 2
    labels = [models.nth(i).get_attribute("data-label") for i in range(2)]
    assert labels == ["alpha-large (simulator)", "alpha-small (simulator)"]
    widths = [models.nth(i).bounding_box()["width"] for i in range(2)]
    assert widths[0] == pytest.approx(3 * widths[1], rel=0.02)  # $0.30 against $0.10
    people = page.locator('[data-chart="cost-by-user"] rect.bar')
    assert people.count() == 2 and people.first.is_visible()
    assert page.locator('[data-chart="cost-by-agent"] rect.bar').count() == 2
    assert page.locator('[data-total="cost"]').inner_text() == "$0.4000"
    assert "bravo-secret" not in page.content()

    page.get_by_role("link", name="Every call in this period").click()
    page.get_by_label("Model").select_option("alpha-small")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.calls tbody tr")
    assert rows.count() == 1 and "alpha-small" in rows.first.inner_text()


def test_the_audit_page_lists_and_filters_events(page, tenant_a):
    log_in(page, tenant_a.owner)
    page.get_by_role("link", name="Audit").click()
    page.wait_for_url("**/audit/")
    types = page.locator("table.events tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.type)"
    )
    assert types[0] == "auth.login"  # newest first: this sign-in
    assert {"group.created", "membership.created", "agent.created"} <= set(types)
    page.get_by_label("Type").select_option("agent.created")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("table.events tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.type)"
    ) == ["agent.created"]


def test_owners_see_the_budget_banner_at_eighty_percent_and_members_get_403(page, tenant_a):
    set_plan("free", monthly_budget=Decimal("1.00"))
    spend(tenant_a.group, "0.820")
    log_in(page, tenant_a.owner)
    banner = page.get_by_role("status")
    assert banner.is_visible()
    assert "82 % of this month's AI budget is used" in banner.inner_text()
    page.get_by_role("button", name="Log out").click()
    log_in(page, tenant_a.member)
    assert page.locator(".budget-banner").count() == 0
    assert page.goto("/usage/").status == 403
    assert page.goto("/audit/").status == 403

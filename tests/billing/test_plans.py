"""Plans: rows edited by superusers, defaults from settings, max agents enforced on creation."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from billing.models import Plan
from billing.selectors import plan_for
from billing.services import usage_rollup_day
from ontology import services
from ontology.models import Group, Thing
from ontology.scoping import group_scope
from tests.billing.conftest import record_on
from tests.conftest import AGENT_PROPERTIES, set_plan

pytestmark = pytest.mark.django_db


def test_every_plan_has_a_row_and_a_missing_row_falls_back_to_the_settings(tenant_a, settings):
    assert set(Plan.objects.values_list("code", flat=True)) == set(Group.Plan.values)
    set_plan("free", max_upload_mb=3)
    assert plan_for(tenant_a.group).max_upload_bytes == 3 * 1024 * 1024
    Plan.objects.filter(code="free").delete()
    fallback = plan_for(tenant_a.group)
    assert fallback.pk is None
    assert fallback.monthly_budget == settings.PARLEY_PLAN_DEFAULTS["free"]["monthly_budget"]
    assert isinstance(fallback.monthly_budget, Decimal)


def test_a_group_cannot_create_more_agents_than_its_plan_allows(tenant_a):
    set_plan("free", max_agents=2)
    second = services.thing_create(
        group=tenant_a.group,
        type=Thing.Type.AGENT,
        name="Second",
        properties=AGENT_PROPERTIES,
        actor=tenant_a.owner,
    )
    with pytest.raises(ValidationError, match="most its plan allows"):
        services.thing_create(
            group=tenant_a.group,
            type=Thing.Type.AGENT,
            name="Third",
            properties=AGENT_PROPERTIES,
            actor=tenant_a.owner,
        )
    services.thing_update(thing=second, actor=tenant_a.owner, status=Thing.Status.ARCHIVED)
    services.thing_create(
        group=tenant_a.group,
        type=Thing.Type.AGENT,
        name="Third",
        properties=AGENT_PROPERTIES,
        actor=tenant_a.owner,
    )
    with group_scope(tenant_a.group):
        assert Thing.objects.filter(type=Thing.Type.AGENT).count() == 3


def test_the_admin_shows_the_agent_limit_as_a_form_error(client, tenant_a):
    set_plan("free", max_agents=1)
    client.force_login(tenant_a.owner)
    url = reverse("admin:agents_agent_add")
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.update(
        group=tenant_a.group.pk,
        name="One too many",
        provider="openai",
        model="gpt-4o-mini",
        status="active",
    )
    response = client.post(url, data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "most its plan allows (1)" in " ".join(errors["name"])
    with group_scope(tenant_a.group):
        assert Thing.objects.filter(type=Thing.Type.AGENT).count() == 1


def test_only_superusers_edit_plans(client, tenant_a, superuser):
    client.force_login(tenant_a.owner)
    assert client.get(reverse("admin:billing_plan_changelist")).status_code == 403
    client.force_login(superuser)
    plan = Plan.objects.get(code="team")
    response = client.post(
        reverse("admin:billing_plan_change", args=[plan.pk]),
        {
            "code": "team",
            "monthly_budget": "250.00",
            "monthly_token_budget": "",
            "message_rate_user": "40/m",
            "message_rate_group": "400/m",
            "max_upload_mb": 30,
            "max_agents": 30,
        },
    )
    assert response.status_code == 302
    plan.refresh_from_db()
    assert (plan.monthly_budget, plan.message_rate_user) == (Decimal("250.00"), "40/m")
    bad = client.post(
        reverse("admin:billing_plan_change", args=[plan.pk]),
        {
            "code": "team",
            "monthly_budget": "",
            "monthly_token_budget": "",
            "message_rate_user": "lots",
            "message_rate_group": "400/m",
            "max_upload_mb": 30,
            "max_agents": "",
        },
    )
    assert "Write a rate like" in bad.content.decode()


def test_the_usage_roll_ups_are_in_the_admin_with_their_totals(client, tenant_a, tenant_b):
    yesterday = timezone.localdate() - timedelta(days=1)
    record_on(yesterday, tenant_a.group, input_tokens=300, model="alpha-model")
    record_on(yesterday, tenant_b.group, input_tokens=700, model="bravo-model")
    usage_rollup_day(day=yesterday)
    client.force_login(tenant_a.owner)
    page = client.get(reverse("admin:billing_usagedaily_changelist")).content.decode()
    assert "alpha-model" in page and "bravo-model" not in page
    assert "data-totals" in page and "0.30000000" in page

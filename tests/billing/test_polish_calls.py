"""The Calls page's Model filter names each model once, however many calls it made."""

import pytest
from django.urls import reverse

from billing import selectors
from ontology.scoping import group_scope
from tests.billing.conftest import spend

pytestmark = pytest.mark.django_db


def test_each_model_is_offered_once_in_the_filter(client, tenant_a, tenant_b):
    for _ in range(3):
        spend(tenant_a.group, "0.010", model="all-MiniLM-L6-v2")
    spend(tenant_a.group, "0.010", model="alpha-model-x")
    spend(tenant_b.group, "0.010", model="bravo-model-z")

    with group_scope(tenant_a.group):
        models = selectors.ledger_models(group=tenant_a.group)
    assert models == ["all-MiniLM-L6-v2", "alpha-model-x"]
    client.force_login(tenant_a.owner)
    response = client.get(reverse("billing:calls"))
    choices = [value for value, _ in response.context["form"].fields["model"].choices]
    assert choices == ["", "all-MiniLM-L6-v2", "alpha-model-x"]
    assert response.content.decode().count('<option value="all-MiniLM-L6-v2"') == 1

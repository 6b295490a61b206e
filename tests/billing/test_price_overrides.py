"""Price overrides are kept in each process, cost no query per call, and are never served late."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agents import catalog
from billing.models import PriceOverride
from billing.pricing import Prices
from tests.caches import UNREACHABLE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("price_overrides")]

SIM_GPT = catalog.get_model("simulator", "sim-gpt")
LISTED = catalog.list_prices(SIM_GPT)


def price() -> Prices:
    return catalog.prices_for(SIM_GPT)


def form(input_price: str, output_price: str, cached_price: str = "0") -> dict:
    return {
        "provider": "simulator",
        "model": "sim-gpt",
        "input_per_million": input_price,
        "output_per_million": output_price,
        "cached_input_per_million": cached_price,
        "note": "negotiated",
    }


def test_a_change_in_the_admin_prices_the_very_next_call(client, superuser):
    """This process's copy is dropped only through the version in Redis, as in every other
    process: each price here is read right after the admin's answer."""
    client.force_login(superuser)
    assert price() == LISTED  # the copy is made: no override

    response = client.post(reverse("admin:billing_priceoverride_add"), form("10", "20", "5"))
    assert response.status_code == 302
    assert price() == Prices(Decimal("10"), Decimal("20"), Decimal("5"))

    override = PriceOverride.objects.get()
    change = reverse("admin:billing_priceoverride_change", args=[override.pk])
    assert client.post(change, form("12.5", "30")).status_code == 302
    assert price() == Prices(Decimal("12.5"), Decimal("30"), Decimal("0"))

    delete = reverse("admin:billing_priceoverride_delete", args=[override.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 302
    assert price() == LISTED


def test_a_kept_price_costs_no_query():
    PriceOverride.objects.create(
        provider="simulator",
        model="sim-gpt",
        input_per_million=Decimal("7"),
        output_per_million=Decimal("9"),
    )
    gpt_4o = catalog.get_model("openai", "gpt-4o")
    price()  # the first call in the process reads the table
    catalog.prices_for(gpt_4o)

    with CaptureQueriesContext(connection) as queries:
        overridden, listed = price(), catalog.prices_for(gpt_4o)

    assert overridden == Prices(Decimal("7"), Decimal("9"), Decimal("0"))
    assert listed == catalog.list_prices(gpt_4o)
    assert queries.captured_queries == []


def test_without_redis_the_price_is_read_from_the_database():
    """Redis down: no version to check the copy against, so the database decides (here, a
    change that sent no signal, which the copy cannot know about)."""
    override = PriceOverride.objects.create(
        provider="simulator",
        model="sim-gpt",
        input_per_million=Decimal("7"),
        output_per_million=Decimal("9"),
    )
    assert price().input == Decimal("7")  # kept by this process
    PriceOverride.objects.filter(pk=override.pk).update(input_per_million=Decimal("8"))

    with override_settings(CACHES=UNREACHABLE), CaptureQueriesContext(connection) as queries:
        assert price().input == Decimal("8")
    assert any("agents_priceoverride" in q["sql"] for q in queries.captured_queries)

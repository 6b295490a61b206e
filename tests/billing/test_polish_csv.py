"""CSV exports write amounts as plain decimals: a zero cost is 0.00000000, never 0E-8."""

import csv
import io
from dataclasses import replace
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from agents.catalog import Prices
from billing.services import ai_calls_record
from tests.billing.conftest import entry
from tests.billing.test_views import content

pytestmark = pytest.mark.django_db

MONEY = ("input_price", "output_price", "cached_price", "cost")
# One cent per million tokens: one input token costs $0.00000001, which str() writes as 1E-8.
TINY = Prices(Decimal("0.01"), Decimal("0"), Decimal("0"))


def test_a_free_call_is_written_as_plain_zeros_in_the_ledger_csv(client, tenant_a):
    ai_calls_record(entries=[entry(tenant_a.group, input_tokens=0, status="failed")])
    client.force_login(tenant_a.owner)
    [row] = list(csv.DictReader(io.StringIO(content(client.get(reverse("billing:ledger-csv"))))))
    assert row["cost"] == "0.00000000"
    for column in MONEY:
        assert "E" not in row[column].upper(), (column, row[column])
    assert row["input_price"] == "1000.000000"  # prices keep their places too


def test_the_statement_csv_writes_a_tiny_amount_in_plain_digits(client, tenant_a):
    ai_calls_record(entries=[replace(entry(tenant_a.group, input_tokens=1), prices=TINY)])
    client.force_login(tenant_a.owner)
    month = timezone.localdate().strftime("%Y-%m")
    response = client.get(reverse("billing:statement-csv"), {"month": month})
    rows = list(csv.reader(io.StringIO(content(response))))
    line = next(r for r in rows if r and r[0] == "simulator")
    total = next(r for r in rows if r and r[0] == "Total")
    due = next(r for r in rows if r and r[0] == "Amount due")
    assert (line[-1], total[-1], due[-1]) == ("0.00000001", "0.00000001", "0.00")
    assert not any("E-" in cell for r in rows for cell in r)

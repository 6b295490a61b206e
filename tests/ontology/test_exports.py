"""CSV downloads: a cell a spreadsheet would run as a formula is written as text."""

import csv
import io
import json
from decimal import Decimal

import pytest
from django.urls import reverse

from chat.models import AIThread
from ontology import services
from ontology.exports import csv_cell
from ontology.scoping import group_scope
from tests.billing.test_views import content

FORMULA = '=HYPERLINK("http://x","y")'


@pytest.mark.parametrize("text", [FORMULA, "+1+2", "-2+3", "@SUM(A1)", "\tx", "\r=1"])
def test_a_string_a_spreadsheet_would_run_gets_a_leading_quote(text):
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["Alpha Inc", "", "a=b", 42, -1, Decimal("-0.250"), 1.5, None])
def test_plain_text_and_numbers_are_left_alone(value):
    assert csv_cell(value) == value
    assert type(csv_cell(value)) is type(value)


@pytest.mark.django_db
def test_a_formula_in_a_thread_title_reaches_the_audit_csv_as_text(client, tenant_a):
    with group_scope(tenant_a.group):
        thread = AIThread.objects.create(group=tenant_a.group, user=tenant_a.member, title=FORMULA)
        services.event_record(
            group=tenant_a.group,
            type="thread.renamed",
            actor=tenant_a.member,
            target=thread,
            metadata={"title": FORMULA},
        )
    client.force_login(tenant_a.owner)
    export = client.get(reverse("audit-export"), {"type": "thread.renamed"})
    [row] = list(csv.DictReader(io.StringIO(content(export))))
    assert row["target"] == "'" + FORMULA
    assert json.loads(row["metadata"]) == {"title": FORMULA}  # JSON starts with "{": left alone
    assert row["actor"] == tenant_a.member.username

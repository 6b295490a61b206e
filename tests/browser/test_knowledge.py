"""The Knowledge page in Chromium: a source's status changes in place while it is ingested."""

import pytest
from playwright.sync_api import expect

from agents import knowledge
from agents.models import KnowledgeSource
from ontology.scoping import group_scope
from tests.browser.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_status_of_the_sources_on_the_page_updates_without_a_reload(page, tenant_a):
    source, _ = knowledge.source_add_text(
        group=tenant_a.group, title="Parking", text="Park in bay C.", actor=None, queue=False
    )  # queued and left so: this test moves it on itself
    log_in(page, tenant_a.owner)
    page.goto("/knowledge/")
    row = page.locator(f'tr[data-source-id="{source.pk}"]')
    expect(row.locator('[data-field="label"]')).to_have_text("Queued")

    with group_scope(tenant_a.group):
        KnowledgeSource.objects.filter(pk=source.pk).update(
            status=KnowledgeSource.Status.FAILED, error="The file is binary, not text."
        )
    expect(row.locator('[data-field="label"]')).to_have_text("Failed")
    expect(row.locator('[data-field="error"]')).to_have_text("The file is binary, not text.")
    expect(row.locator('[data-field="progress"]')).to_be_hidden()

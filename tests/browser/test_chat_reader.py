"""A thread read by someone who is not its author: the page shows it live, and offers no writing."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.test_chat import ask, make_agent, start_chat

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_owner_follows_a_members_thread_read_only(page, browser, parley_url, tenant_a):
    agent = make_agent(tenant_a, "Shared", "sim-gpt@text;words=6")
    author = browser.new_context(base_url=parley_url)
    try:
        mine = author.new_page()
        log_in(mine, tenant_a.member)
        start_chat(mine, agent)
        ask(mine, "First question")
        expect(mine.locator('.message.assistant[data-status="complete"]')).to_have_count(1)

        log_in(page, tenant_a.owner)
        page.goto(mine.url)
        expect(page.locator("#read-only")).to_be_visible()
        expect(page.locator("#conversation")).to_have_attribute("data-connected", "true")
        expect(page.locator("#composer")).to_be_hidden()
        expect(page.get_by_role("button", name="Rename")).to_have_count(0)
        answer = page.locator('.message.assistant[data-status="complete"]')
        expect(answer.get_by_role("button", name="Copy")).to_be_visible()
        expect(answer.get_by_role("button", name="Helpful", exact=True)).to_have_count(0)
        expect(answer.get_by_role("button", name="Regenerate")).to_have_count(0)

        # Enter in the read-only title stays on the page (no form post navigates away).
        title = page.get_by_label("Conversation title")
        expect(title).not_to_be_editable()
        title.press("Enter")
        expect(page.locator("#read-only")).to_be_visible()
        assert page.url == mine.url

        ask(mine, "Second question")
        expect(page.locator(".message.user .bubble").last).to_have_text("Second question")
        expect(page.locator('.message.assistant[data-status="complete"]')).to_have_count(2)
        expect(page.locator("#composer")).to_be_hidden()
    finally:
        author.close()

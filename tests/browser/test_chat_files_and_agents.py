"""In Chromium: a file attached from the chat box (by keyboard) is read for that conversation
and cited in its answers, and nowhere else; the agent picker switches who answers, for
every open tab; the composer still fits a phone."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from chat.models import AIThread
from ontology.scoping import group_scope
from tests.browser.conftest import log_in
from tests.browser.test_chat import ask, make_agent, start_chat

pytestmark = pytest.mark.django_db(transaction=True)

NOTES = b"# Lisbon offsite\n\nThe Lisbon offsite budget is 4,200 euros per team.\n"
QUESTION = "What is the Lisbon offsite budget?"


def attach_by_keyboard(page: Page) -> None:
    # The chooser is answered by a listener set up first: Playwright intercepts file
    # choosers from then on, so the key press cannot beat the interception.
    page.once(
        "filechooser",
        lambda chooser: chooser.set_files(
            files=[{"name": "lisbon.md", "mimeType": "text/markdown", "buffer": NOTES}]
        ),
    )
    # Once connected (the page puts the cursor in the message box as it connects).
    expect(page.locator("#conversation")).to_have_attribute("data-connected", "true")
    button = page.get_by_role("button", name="Attach a file")
    button.focus()
    expect(button).to_be_focused()
    page.keyboard.press("Enter")


def test_an_attached_file_is_cited_in_its_conversation_and_nowhere_else(page: Page, tenant_a):
    agent = make_agent(
        tenant_a, "Helpdesk", "sim-gpt@offline;tps=60;ttft_ms=0", tools=["searchKnowledge"]
    )
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    attach_by_keyboard(page)
    chip = page.locator(".attachment-list li", has_text="Lisbon offsite")
    expect(chip).to_contain_text("being read")
    expect(chip).to_contain_text("ready", timeout=60_000)
    expect(page.get_by_role("status").filter(has_text="is ready")).to_have_count(1)

    ask(page, QUESTION)
    answer = page.locator('.message.assistant[data-status="complete"]')
    expect(answer.locator(".answer")).to_contain_text("4,200")
    expect(answer.locator(".sources a")).to_have_text("Lisbon offsite")
    page.reload()  # the page lists the conversation's files
    expect(page.locator(".attachment-list li")).to_contain_text("Lisbon offsite")

    start_chat(page, agent)  # another conversation: the file is not there
    expect(page.locator("#attachments")).to_be_hidden()
    ask(page, QUESTION)
    other = page.locator('.message.assistant[data-status="complete"]')
    expect(other).to_be_visible()
    expect(other.locator(".sources a", has_text="Lisbon offsite")).to_have_count(0)
    page.goto("/knowledge/")
    expect(page.get_by_text("Lisbon offsite")).to_have_count(0)


def test_a_refused_file_says_why_and_stores_nothing(page: Page, tenant_a):
    agent = make_agent(tenant_a, "Helpdesk", "sim-gpt@text;words=5")
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    page.set_input_files(
        "#attach-input",
        files=[{"name": "tool.exe", "mimeType": "application/octet-stream", "buffer": b"MZ"}],
    )
    expect(page.get_by_role("alert")).to_contain_text("unsupported type")
    expect(page.locator("#attachments")).to_be_hidden()


def test_the_agent_picker_switches_who_answers_for_every_tab(
    page: Page, browser: Browser, parley_url: str, tenant_a
):
    first = make_agent(tenant_a, "First", "sim-gpt@text;words=5")
    second = make_agent(tenant_a, "Second", "sim-gpt@text;words=7")
    log_in(page, tenant_a.member)
    start_chat(page, first)
    ask(page, "Hello")
    expect(page.locator('.message.assistant[data-status="complete"]')).to_have_count(1)
    other_tab = page.context.new_page()
    other_tab.goto(page.url)
    expect(other_tab.locator("#agent-name")).to_have_text("First")

    page.get_by_label("Answered by").select_option(label="Second")
    ask(page, "And now?")
    expect(page.locator('.message.assistant[data-status="complete"]')).to_have_count(2)
    expect(page.locator("#agent-name")).to_have_text("Second")
    expect(other_tab.locator("#agent-name")).to_have_text("Second")
    expect(other_tab.get_by_label("Answered by")).to_have_value(str(second.pk))
    with group_scope(tenant_a.group):
        assert AIThread.objects.get(pk=int(page.url.rstrip("/").split("/")[-1])).agent_id == (
            second.pk
        )


def test_the_composer_with_its_new_controls_fits_a_phone(page: Page, tenant_a):
    make_agent(tenant_a, "Second", "sim-gpt@text;words=7")
    agent = make_agent(tenant_a, "A helpdesk with a rather long name", "sim-gpt@text;words=5")
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    expect(page.get_by_role("button", name="Attach a file")).to_be_visible()
    expect(page.get_by_label("Answered by")).to_be_visible()
    overflow = page.evaluate(
        "document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
    )
    assert overflow <= 0

"""Edit and branch in Chromium: editing a question (by keyboard) starts a new branch, each
branch point shows `< n/m >`, switching is instant, reaches the other tab and survives a
reload; a regenerated answer keeps the earlier one one `<` away; it all fits a phone."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in
from tests.browser.test_chat import ask, make_agent, start_chat

pytestmark = pytest.mark.django_db(transaction=True)


def answers(page: Page):
    return page.locator('.message.assistant[data-status="complete"]')


def test_editing_a_question_branches_and_the_versions_can_be_switched(page: Page, tenant_a):
    agent = make_agent(tenant_a, "Brancher", "sim-gpt@text;words=4")
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    ask(page, "First question")
    expect(answers(page)).to_have_count(1)
    other_tab = page.context.new_page()
    other_tab.goto(page.url)

    question = page.locator(".message.user").first
    question.get_by_role("button", name="Edit this question").focus()
    page.keyboard.press("Enter")
    box = page.get_by_label("Edit your question")
    expect(box).to_be_focused()
    expect(box).to_have_value("First question")
    box.fill("Second question")
    page.keyboard.press("Enter")
    expect(page.locator(".message.user .bubble")).to_have_text(["Second question"])
    expect(answers(page)).to_have_count(1)
    edited = page.locator(".message.user").first
    expect(edited.locator(".branch-count")).to_have_text("2/2")
    expect(other_tab.locator(".message.user .bubble")).to_have_text(["Second question"])

    edited.get_by_role("button", name="Previous version").click()
    expect(page.locator(".message.user .bubble")).to_have_text(["First question"])
    expect(page.locator(".message.user .branch-count")).to_have_text("1/2")
    expect(answers(page)).to_have_count(1)
    expect(other_tab.locator(".message.user .bubble")).to_have_text(["First question"])
    page.reload()  # remembered
    expect(page.locator(".message.user .bubble")).to_have_text(["First question"])
    page.locator(".message.user").get_by_role("button", name="Next version").click()
    expect(page.locator(".message.user .bubble")).to_have_text(["Second question"])


def test_a_regenerated_answer_keeps_the_earlier_one_one_click_away(page: Page, tenant_a):
    agent = make_agent(tenant_a, "Regenerator", "sim-gpt@text;words=4")
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    ask(page, "Tell me something")
    expect(answers(page)).to_have_count(1)
    first_id = answers(page).first.get_attribute("data-message-id")
    page.get_by_role("button", name="Regenerate").click()
    second = page.locator(".message.assistant .branch-count")
    expect(second).to_have_text("2/2")
    assert answers(page).first.get_attribute("data-message-id") != first_id
    page.locator(".message.assistant").get_by_role("button", name="Previous version").click()
    expect(page.locator(f"#m-{first_id}")).to_be_visible()
    expect(page.locator(".message.assistant .branch-count")).to_have_text("1/2")


def test_versions_fit_a_phone(page: Page, tenant_a):
    agent = make_agent(tenant_a, "Pocket", "sim-gpt@text;words=4")
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    ask(page, "Hello there")
    expect(answers(page)).to_have_count(1)
    page.get_by_role("button", name="Regenerate").click()
    expect(page.locator(".message.assistant .branch-count")).to_have_text("2/2")
    overflow = page.evaluate(
        "document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
    )
    assert overflow <= 0

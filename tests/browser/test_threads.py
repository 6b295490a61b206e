"""Managing threads in Chromium: delete after confirming, archive and find it again, pin,
export, and a share link a colleague opens until it is revoked; on a phone and by keyboard."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from chat.models import AIThread
from ontology import services
from ontology.models import Membership
from ontology.scoping import group_scope
from tests.browser.conftest import log_in
from tests.chat.test_views import conversation
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}


def press_until(page: Page, key: str, name: str, *, limit: int = 60) -> None:
    """Press `key` (Tab or Shift+Tab) until the focused element is the one called `name`."""
    for _ in range(limit):
        page.keyboard.press(key)
        focused = page.evaluate(
            "() => { const e = document.activeElement; const label = e.labels && e.labels[0];"
            " return (e.getAttribute('aria-label') || (label && label.textContent)"
            " || e.textContent || '').replace(/\\s+/g, ' ').trim(); }"
        )
        if focused == name:
            return
    raise AssertionError(f"{name!r} is not reachable with {key}")


def open_actions(page: Page) -> None:
    # The share form redirects to `#share`, inside the menu: Chromium opens the menu for
    # the fragment once the page has loaded.
    page.wait_for_load_state("load")
    if not page.locator("#thread-actions").evaluate("menu => menu.open"):
        page.locator("#thread-actions > summary").click()
    expect(page.locator(".thread-actions-menu")).to_be_visible()


def rows(page: Page) -> list[str]:
    titles = page.locator(".thread-list .thread-title").all_text_contents()
    return [" ".join(text.split()) for text in titles]


def test_deleting_asks_first_and_works_by_keyboard_alone(page, tenant_a):
    thread, _ = conversation(tenant_a, title="Refunds")
    conversation(tenant_a, title="Keep me")
    log_in(page, tenant_a.member)
    page.goto(thread.get_absolute_url())
    expect(page.get_by_label("Message", exact=True)).to_be_focused()  # the page's script ran

    press_until(page, "Shift+Tab", "Actions for this conversation")
    page.keyboard.press("Enter")
    expect(page.locator(".thread-actions-menu")).to_be_visible()
    press_until(page, "Tab", "Delete…")
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name="Delete “Refunds”?")).to_be_visible()
    expect(page.get_by_text("Its 2 messages")).to_be_visible()
    with group_scope(tenant_a.group):
        assert AIThread.objects.filter(pk=thread.pk).exists()  # asking deleted nothing
    press_until(page, "Tab", "Delete conversation")
    page.keyboard.press("Enter")

    page.wait_for_url("**/threads/")
    expect(page.get_by_text("Deleted “Refunds”.")).to_be_visible()
    assert rows(page) == ["Keep me"]
    with group_scope(tenant_a.group):
        assert not AIThread.objects.filter(pk=thread.pk).exists()
    assert page.goto(thread.get_absolute_url()).status == 404


def test_cancel_on_the_confirmation_keeps_the_thread(page, tenant_a):
    thread, _ = conversation(tenant_a, title="Refunds")
    log_in(page, tenant_a.member)
    page.goto(thread.get_absolute_url())
    open_actions(page)
    page.get_by_role("link", name="Delete…").click()
    page.get_by_role("link", name="Cancel").click()
    page.wait_for_url(f"**{thread.get_absolute_url()}")
    with group_scope(tenant_a.group):
        assert AIThread.objects.filter(pk=thread.pk).exists()


def test_archive_find_it_under_archived_and_pin_on_a_phone(page, tenant_a):
    conversation(tenant_a, title="Old trip")
    conversation(tenant_a, title="Second")
    conversation(tenant_a, title="Newest")
    page.set_viewport_size(PHONE)
    log_in(page, tenant_a.member)
    page.goto("/threads/")
    assert rows(page) == ["Newest", "Second", "Old trip"]

    page.get_by_role("button", name="Pin Second").click()
    expect(page.get_by_text("Pinned “Second” to the top of your conversations.")).to_be_visible()
    assert rows(page) == ["Pinned Second", "Newest", "Old trip"]

    page.get_by_role("button", name="Archive Old trip").click()
    expect(page.get_by_text("Archived “Old trip”. Find it under Archived.")).to_be_visible()
    assert rows(page) == ["Pinned Second", "Newest"]
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0

    page.get_by_role("link", name="Archived", exact=True).click()
    expect(page.get_by_role("heading", name="Archived: Your conversations")).to_be_visible()
    assert rows(page) == ["Old trip"]
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.get_by_role("button", name="Unarchive Old trip").click()
    expect(page.get_by_text("No archived conversations.")).to_be_visible()
    page.get_by_role("link", name="Current", exact=True).click()
    assert rows(page) == ["Pinned Second", "Newest", "Old trip"]


def test_the_actions_menu_fits_a_phone(page, tenant_a):
    thread, _ = conversation(tenant_a, title="A rather long title for a conversation on a phone")
    page.set_viewport_size(PHONE)
    log_in(page, tenant_a.member)
    page.goto(thread.get_absolute_url())
    open_actions(page)
    menu = page.locator(".thread-actions-menu").bounding_box()
    assert menu["x"] >= 0 and menu["x"] + menu["width"] <= PHONE["width"]
    expect(page.get_by_role("button", name="Create a share link")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.get_by_role("button", name="Archive").click()
    expect(page.get_by_text("Find it under Archived.")).to_be_visible()
    open_actions(page)
    expect(page.get_by_role("button", name="Unarchive")).to_be_visible()


def test_export_downloads_the_thread_as_markdown_and_json(page, tenant_a):
    thread, _ = conversation(tenant_a, title="Refunds: 14 days?")
    log_in(page, tenant_a.member)
    page.goto(thread.get_absolute_url())

    open_actions(page)
    with page.expect_download() as markdown:
        page.get_by_role("link", name="Export as Markdown").click()
    assert markdown.value.suggested_filename == f"refunds-14-days-{thread.pk}.md"
    text = markdown.value.path().read_text(encoding="utf-8")
    assert text.startswith("# Refunds: 14 days?\n")
    assert "How long do refunds take?" in text and "1. Refund policy" in text

    with page.expect_download() as document:
        page.get_by_role("link", name="Export as JSON").click()
    assert document.value.suggested_filename == f"refunds-14-days-{thread.pk}.json"
    exported = json.loads(document.value.path().read_text(encoding="utf-8"))
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant"]
    assert exported["messages"][1]["citations"][0]["title"] == "Refund policy"


def test_a_colleague_opens_the_share_link_until_it_is_revoked(page, browser, parley_url, tenant_a):
    thread, _ = conversation(tenant_a, title="Parking rules", question="Where do I park?")
    colleague = make_user("colleague@alpha.example")
    services.membership_create(
        group=tenant_a.group, user=colleague, role=Membership.Role.MEMBER, actor=tenant_a.owner
    )
    log_in(page, tenant_a.member)
    page.goto(thread.get_absolute_url())
    open_actions(page)
    page.get_by_role("button", name="Create a share link").click()
    expect(page.get_by_text("can now read this conversation at")).to_be_visible()
    open_actions(page)
    link = page.get_by_label("Read-only link for Alpha Inc").input_value()
    assert link.startswith(parley_url) and "/shared/" in link

    other = browser.new_context(base_url=parley_url)
    try:
        reader = other.new_page()
        log_in(reader, colleague)
        assert reader.goto(link).status == 200
        expect(reader.get_by_role("heading", name="Parking rules")).to_be_visible()
        expect(reader.get_by_text("Where do I park?")).to_be_visible()
        expect(reader.get_by_text("read-only")).to_be_visible()
        expect(reader.locator("#composer")).to_have_count(0)
        assert reader.goto(thread.get_absolute_url()).status == 404  # the link, not the thread

        page.get_by_role("button", name="Stop sharing").click()
        expect(page.get_by_text("The link no longer opens this conversation.")).to_be_visible()
        assert reader.goto(link).status == 404
    finally:
        other.close()

"""People, in Chromium: an owner invites someone from the Members page (keyboard only), the
invitee opens the emailed link, makes an account and lands in the organisation; a person
who forgot their password resets it by email; the Members page fits a phone."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from ontology.models import Membership, User
from ontology.scoping import group_scope
from tests.browser.conftest import log_in
from tests.servers import sent_mail

pytestmark = pytest.mark.django_db(transaction=True)


def link_in_last_mail(pattern: str, before: int) -> str:
    mails = sent_mail()
    assert len(mails) == before + 1, "exactly one mail was sent"
    return re.search(pattern, mails[-1]).group(1)


def test_an_invited_person_joins_from_the_emailed_link(
    page: Page, browser: Browser, parley_url: str, tenant_a
):
    log_in(page, tenant_a.owner)
    page.goto("/members/")
    expect(page.get_by_role("heading", name=re.compile("Members"))).to_be_visible()
    before = len(sent_mail())
    # Keyboard only: type the address, pick the role with the arrow keys, press Enter.
    page.get_by_label("Email").focus()
    page.keyboard.type("nia@example.com")
    page.keyboard.press("Tab")
    page.keyboard.press("ArrowUp")  # Member -> Admin
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Invitation sent to nia@example.com.")
    row = page.locator("tr", has_text="nia@example.com")
    expect(row).to_contain_text("Admin")
    link = link_in_last_mail(r"https?://[^/\s]+(/invitations/[^/\s]+/)", before)

    invitee = browser.new_context(base_url=parley_url).new_page()
    invitee.goto(link)
    expect(invitee.get_by_role("heading", name="Join Alpha Inc")).to_be_visible()
    invitee.get_by_label("Your name").fill("Nia")
    invitee.get_by_label("Password", exact=True).fill("a long pass 42!")
    invitee.get_by_label("Password again").fill("a long pass 42!")
    invitee.get_by_role("button", name="Create account and join").click()
    expect(invitee.get_by_role("status")).to_contain_text("Welcome to Alpha Inc.")
    expect(invitee.get_by_text("Nia")).to_be_visible()  # signed in, by name
    user = User.objects.get(email="nia@example.com")
    with group_scope(tenant_a.group):
        assert Membership.objects.get(user=user).role == "admin"
    invitee.goto(link)  # used: the link says so, and leads back
    expect(invitee.get_by_role("heading", name="This invitation is not valid")).to_be_visible()
    invitee.context.close()

    page.reload()
    expect(page.locator("tr", has_text="Nia")).to_contain_text("nia@example.com")
    expect(page.get_by_text("No open invitations.")).to_be_visible()


def test_a_forgotten_password_is_reset_from_the_login_page(page: Page, tenant_a):
    before = len(sent_mail())
    page.goto("/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill(tenant_a.member.email)
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    link = link_in_last_mail(r"https?://[^/\s]+(/password-reset/[^/\s]+/[^/\s]+/)", before)
    page.goto(link)
    page.get_by_label("New password", exact=True).fill("fresh horse 99 battery")
    page.get_by_label("New password again").fill("fresh horse 99 battery")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("heading", name="Your password is set")).to_be_visible()
    page.get_by_role("link", name="Log in").click()
    log_in(page, tenant_a.member, "fresh horse 99 battery")
    assert "/login/" not in page.url


def test_the_members_page_fits_a_phone(page: Page, tenant_a):
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, tenant_a.owner)
    page.goto("/members/")
    expect(page.get_by_role("button", name="Send invitation")).to_be_visible()
    overflow = page.evaluate(
        "document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
    )
    assert overflow <= 0

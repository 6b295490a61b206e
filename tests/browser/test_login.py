import pytest

from tests.browser.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_log_in_and_out(page, tenant_a):
    log_in(page, tenant_a.member)
    assert page.get_by_text(tenant_a.member.username).is_visible()
    page.get_by_role("button", name="Log out").click()
    page.goto("/")
    assert "/login/" in page.url


def test_wrong_password_is_refused_with_a_sentence(page, tenant_a):
    page.goto("/login/")
    page.get_by_label("Email").fill(tenant_a.member.username)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").is_visible()
    assert "/login/" in page.url

"""Browser tests: a real daphne process serving the test database, driven by Debian's Chromium.

The server is a subprocess started like production (tests/servers.py), pointed at the test
database, the test Redis and the session's provider simulator; the test process's Celery
worker runs its tool calls. Tests that use it need committed data:
mark them `django_db(transaction=True)`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest
from django.conf import global_settings
from playwright.sync_api import Browser, Page, sync_playwright

from tests.servers import daphne_servers

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def chromium_path() -> str:
    path = os.environ.get("PARLEY_CHROMIUM") or shutil.which("chromium")
    if not path:
        raise RuntimeError(
            "Browser tests need Debian's chromium (`apt-get install chromium`); "
            "`make test` installs it where missing."
        )
    return path


@pytest.fixture(autouse=True)
def _server_password_hashing(settings):
    """The server process verifies passwords with the production hashers, not the tests' MD5."""
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS


@pytest.fixture(scope="session")
def parley_url(django_db_setup, simulator, celery_worker) -> Iterator[str]:
    """Base URL of a daphne subprocess serving the test database."""
    with daphne_servers(1, simulator_url=simulator.url) as (url,):
        yield url


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Package-scoped: sync Playwright keeps an event loop on the main thread while it runs,
    which must be gone before the async tests of other packages start theirs. While it runs,
    Django sees that loop and would refuse the tests' own (synchronous) ORM calls."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium_path(), args=CHROMIUM_ARGS
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Browser, parley_url: str) -> Iterator[Page]:
    """A fresh browser context (no cookies) on the live server.

    JS dialogs are recorded in `page.dialogs`; an uncaught JavaScript error fails the test.
    """
    context = browser.new_context(base_url=parley_url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.dialogs = []

    def on_dialog(dialog):
        page.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def log_in(page: Page, user, password: str | None = None) -> None:
    """Log in through the real form, as a person would."""
    page.goto("/login/")
    page.get_by_label("Email").fill(user.username)
    page.get_by_label("Password").fill(password or "pw-" + user.username)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login/" not in url)


def _server_is_quiet() -> bool:
    """No answer streaming, every answered thread titled (the title call runs after the
    answer), and no other session of the test database in the middle of a statement."""
    from django.db import connection

    from chat.models import AIThread, Message
    from ontology.scoping import scopes_disabled

    with scopes_disabled():
        if Message.objects.filter(status=Message.Status.STREAMING).exists():
            return False
        answered = Message.objects.filter(role=Message.Role.ASSISTANT).values("thread_id")
        if AIThread.objects.filter(pk__in=answered, title="").exists():
            return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
        )
        return cursor.fetchone()[0] == 0


@pytest.fixture(autouse=True)
def _server_quiet_before_flush(transactional_db):
    """A browser test ends when its page has what it waited for, but the server may still be
    finishing the turn (its ledger row, the title call). The database is emptied after each
    test; doing that while the server writes deadlocks, so wait for the server to settle."""
    yield
    deadline = time.monotonic() + 20
    while not _server_is_quiet() and time.monotonic() < deadline:
        time.sleep(0.05)  # polls a condition with a deadline; not a timed synchronisation

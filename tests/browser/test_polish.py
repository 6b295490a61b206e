"""Found on the walk, in Chromium: error pages with a way back, the Calls page's Model filter,
and the Knowledge and Calls tables at a phone's width (390 px) and a laptop's (1280 px)."""

import pytest
from playwright.sync_api import expect

from agents import knowledge
from tests.billing.conftest import spend
from tests.browser.conftest import log_in
from tests.servers import daphne_servers

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}
CALL_HEADERS = [
    "When",
    "Model",
    "Agent",
    "Person",
    "Purpose",
    "Input",
    "Cached",
    "Output",
    "Cost",
    "Status",
    "Latency",
    "First token",
]

PAGE_FITS = "document.scrollingElement.scrollWidth <= window.innerWidth"
# A header is seen when it lies inside the window and inside every box that clips it.
HEADER_SEEN = """th => {
  const box = th.getBoundingClientRect();
  if (box.width === 0 || box.left < 0 || box.right > window.innerWidth) return false;
  for (let el = th.parentElement; el; el = el.parentElement) {
    const style = getComputedStyle(el);
    if (style.overflowX === 'visible') continue;
    const clip = el.getBoundingClientRect();
    if (box.left < clip.left - 1 || box.right > clip.right + 1) return false;
  }
  return true;
}"""


@pytest.fixture(scope="module")
def production_url(django_db_setup, simulator):
    """A server with DEBUG off: the error pages people see."""
    settings_module = {"DJANGO_SETTINGS_MODULE": "tests.browser.production_settings"}
    with daphne_servers(1, simulator_url=simulator.url, env=settings_module) as (url,):
        yield url


@pytest.fixture
def production_page(browser, production_url):
    context = browser.new_context(base_url=production_url)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_a_missing_page_shows_the_site_and_a_way_back(production_page, tenant_a):
    page = production_page
    log_in(page, tenant_a.member)
    page.goto("/threads/")
    # A stale link followed from the thread list: the browser says where it came from.
    with page.expect_response("**/no-such-page/") as response:
        page.evaluate("location.assign('/no-such-page/')")
    assert response.value.status == 404
    expect(page.get_by_role("heading", name="This page does not exist")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()  # the site, not a dead end
    page.get_by_role("link", name="Back to the previous page").click()
    page.wait_for_url("**/threads/")
    page.goto("/no-such-page/")
    page.get_by_role("link", name="Go to the home page").click()
    page.wait_for_url(lambda url: "/no-such-page/" not in url)


def test_a_refused_page_says_why_and_leads_home(page, tenant_a):
    log_in(page, tenant_a.member)
    assert page.goto("/usage/").status == 403
    expect(page.get_by_text("Only owners and admins can see usage.")).to_be_visible()
    page.get_by_role("link", name="Go to the home page").click()
    page.wait_for_url(lambda url: "/usage/" not in url)


def test_the_model_filter_names_each_model_once(page, tenant_a):
    for _ in range(4):
        spend(tenant_a.group, "0.010", model="all-MiniLM-L6-v2")
    spend(tenant_a.group, "0.020", model="sim-gpt")
    log_in(page, tenant_a.owner)
    page.goto("/usage/calls/")
    options = page.get_by_label("Model").locator("option").all_inner_texts()
    assert options == ["Any model", "all-MiniLM-L6-v2", "sim-gpt"]
    page.get_by_label("Model").select_option("all-MiniLM-L6-v2")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.calls tbody tr")).to_have_count(4)


def busy_calls_page(tenant):
    for n in range(3):
        spend(
            tenant.group,
            "0.010",
            model=f"sim-gpt@text;words=200;tps=50;ttft_ms={n}",
            user=tenant.member,
            agent=tenant.agent,
            status="failed" if n else "ok",
        )


def test_the_calls_table_fits_a_phone_and_shows_every_column_on_a_laptop(page, tenant_a):
    busy_calls_page(tenant_a)
    log_in(page, tenant_a.owner)
    page.set_viewport_size(PHONE)
    page.goto("/usage/calls/")
    expect(page.locator("table.calls tbody tr")).to_have_count(3)
    assert page.evaluate(PAGE_FITS)
    # The table scrolls in its own box: its last column can be reached.
    last = page.locator("table.calls th").last
    last.scroll_into_view_if_needed()
    assert page.locator("table.calls th").last.evaluate(HEADER_SEEN)
    assert page.evaluate(PAGE_FITS)

    page.set_viewport_size(LAPTOP)
    page.goto("/usage/calls/")
    headers = page.locator("table.calls thead th")
    assert headers.all_inner_texts() == CALL_HEADERS
    hidden = [
        name
        for name, seen in zip(
            CALL_HEADERS, headers.evaluate_all(f"ths => ths.map({HEADER_SEEN})"), strict=True
        )
        if not seen
    ]
    assert hidden == []
    assert page.evaluate(PAGE_FITS)


def test_the_knowledge_table_fits_a_phone_and_a_laptop(page, tenant_a):
    for title in ("Facilities handbook for the Amsterdam office", "Expense-claims-2026"):
        knowledge.source_add_text(
            group=tenant_a.group, title=title, text=f"About {title}.", actor=None, queue=False
        )
    log_in(page, tenant_a.owner)
    for size in (PHONE, LAPTOP):
        page.set_viewport_size(size)
        page.goto("/knowledge/")
        expect(page.locator("table.sources tbody tr")).to_have_count(2)
        assert page.evaluate(PAGE_FITS), size
        seen = page.locator("table.sources thead th").evaluate_all(f"ths => ths.map({HEADER_SEEN})")
        if size is LAPTOP:
            assert all(seen)

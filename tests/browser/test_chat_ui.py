"""The chat's finish in a real browser: math, the theme, times, the favicon, keyboard shortcuts,
focus after Stop, and citations opened beside the conversation; at desktop and phone width,
and with the keyboard alone."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import Page, expect

from agents import knowledge
from chat.models import Message
from ontology.models import User
from ontology.scoping import group_scope
from tests.browser.conftest import log_in
from tests.browser.test_chat import ask, make_agent, start_chat, stored_messages, tab_to

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}
LIGHT_BG = "rgb(246, 247, 249)"
DARK_BG = "rgb(18, 20, 25)"
STREAMING = (
    "() => { const m = document.querySelector('.message.assistant.streaming .raw');"
    " return m && m.textContent.split(' ').length > 5; }"
)


def background(page: Page) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


def focused_id(page: Page) -> str:
    return page.evaluate("document.activeElement && document.activeElement.id")


def focus_is_inside(page: Page, selector: str) -> bool:
    return page.evaluate(
        "(s) => document.querySelector(s).contains(document.activeElement)",
        selector,
    )


# --- math ----------------------------------------------------------------------------------


def test_math_in_an_answer_is_mathml_once_the_answer_is_rendered(page, tenant_a):
    question = (
        "Euler: $e^{i\\pi} + 1 = 0$. It costs $5 and $10.\n\n"
        "$$\n\\frac{a}{b} = \\sqrt{x}\n$$\n\n"
        "Broken: $\\frac{1}{$ stays readable."
    )
    agent = make_agent(tenant_a, "Mathematician", "sim-gpt@offline;tps=30")  # echoes the question
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    ask(page, question)

    # While it streams, the text is plain text; the server's rendering brings the math.
    page.wait_for_function(
        "() => { const m = document.querySelector('.message.assistant.streaming .raw');"
        " return m && m.textContent.includes('$'); }"
    )
    assert page.locator(".message.assistant.streaming math").count() == 0
    answer = page.locator('.message.assistant[data-status="complete"] .answer')
    for _ in range(2):  # as swapped in when the answer ends, and after a reload
        expect(answer.locator("math")).to_have_count(2)
        expect(answer.locator('math[display="inline"] mi').first).to_have_text("e")
        expect(answer.locator('.math.display math[display="block"] mfrac')).to_have_count(1)
        expect(answer).to_contain_text("It costs $5 and $10.")
        expect(answer.locator("code.math-source")).to_have_text("$\\frac{1}{$")
        # Laid out by the browser's MathML engine: the fraction is taller than a line of text.
        height = answer.locator("mfrac").evaluate("e => e.getBoundingClientRect().height")
        assert height > 20
        page.reload()


# --- theme ---------------------------------------------------------------------------------


def test_the_theme_follows_the_device_and_the_toggle_forces_it_across_reloads(page, tenant_a):
    page.emulate_media(color_scheme="light")
    agent = make_agent(tenant_a, "Painter", "sim-gpt")
    log_in(page, tenant_a.member)
    start_chat(page, agent)  # a conversation page: it has the code highlighting's styles
    toggle = page.locator("#theme-toggle")
    expect(toggle).to_have_attribute("aria-pressed", "mixed")
    expect(toggle).to_have_accessible_name(re.compile(r"^Theme: System"))
    assert background(page) == LIGHT_BG
    page.emulate_media(color_scheme="dark")  # "system" follows the device, live
    assert background(page) == DARK_BG

    toggle.click()  # system -> light: forced, whatever the device says
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    assert background(page) == LIGHT_BG
    expect(toggle).to_have_attribute("aria-pressed", "false")
    expect(toggle).to_have_accessible_name("Theme: Light. Switch to Dark")
    expect(toggle).to_have_attribute("data-saved", "light")

    toggle.click()  # light -> dark
    assert background(page) == DARK_BG
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(toggle).to_have_attribute("data-saved", "dark")
    user = User.objects.get(pk=tenant_a.member.pk)
    assert user.preferences["theme"] == "dark"

    page.emulate_media(color_scheme="light")
    page.reload()
    # Rendered dark by the server (no flash of light), though the device is light.
    html = page.request.get(page.url).text()
    assert '<html lang="en" data-theme="dark">' in html
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert background(page) == DARK_BG
    # Code highlighting has a dark palette too.
    color = page.evaluate(
        "() => { const s = document.createElement('span'); s.className = 'k';"
        " const c = document.createElement('code'); c.className = 'highlight'; c.append(s);"
        " document.body.append(c); return getComputedStyle(s).color; }"
    )
    assert color == "rgb(255, 123, 114)"  # github-dark's keyword, not the light green

    toggle.click()  # dark -> system
    expect(toggle).to_have_attribute("data-saved", "system")
    assert background(page) == LIGHT_BG
    user.refresh_from_db()
    assert user.preferences["theme"] == "system"


def test_the_theme_toggle_by_keyboard_at_phone_width(page, tenant_a):
    page.set_viewport_size(PHONE)
    page.emulate_media(color_scheme="light")
    log_in(page, tenant_a.member)
    page.goto("/")
    toggle = page.locator("#theme-toggle")
    expect(toggle).to_be_in_viewport()
    tab_to(page, "Theme: System. Switch to Light")
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("data-saved", "light")
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("data-saved", "dark")
    assert background(page) == DARK_BG
    expect(toggle).to_be_focused()  # no reload: focus stays on the button
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0


# --- times and the favicon -----------------------------------------------------------------


def test_messages_show_when_they_were_written_in_the_readers_time_zone(
    browser, parley_url, tenant_a
):
    context = browser.new_context(base_url=parley_url, timezone_id="Asia/Kolkata")
    context.set_default_timeout(15_000)
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    page = context.new_page()
    try:
        agent = make_agent(tenant_a, "Clock", "sim-gpt@text;words=60;tps=40")
        log_in(page, tenant_a.member)
        start_chat(page, agent)
        ask(page, "What time is it?")
        question_time = page.locator(".message.user time.message-time")
        expect(question_time).to_have_count(1)  # from message.created, while the answer streams
        page.wait_for_function(STREAMING)
        assert page.locator(".message.assistant.streaming time").count() == 0
        answer_time = page.locator('.message.assistant[data-status="complete"] time')
        expect(answer_time).to_have_count(1)  # arrives with the rendered answer

        [question] = stored_messages(tenant_a, Message.Role.USER)
        india = question.created_at.astimezone(timezone(timedelta(hours=5, minutes=30)))
        shown = f"{india.day} {india:%b %Y, %H:%M}"
        expect(question_time).to_have_text(shown)
        stamp = datetime.fromisoformat(question_time.get_attribute("datetime"))
        assert abs(stamp - question.created_at) < timedelta(seconds=1)

        page.reload()
        expect(page.locator(".message.user time.message-time")).to_have_text(shown)
        pattern = re.compile(r"^\d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2}$")
        expect(page.locator(".message.assistant time.message-time")).to_have_text(pattern)
        assert errors == []
    finally:
        context.close()


def test_every_page_has_the_favicon(page, tenant_a):
    page.goto("/login/")
    icon = page.locator('link[rel="icon"]')
    expect(icon).to_have_attribute("type", "image/svg+xml")
    response = page.request.get(icon.get_attribute("href"))
    assert response.ok
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.text().lstrip().startswith("<svg")


# --- keyboard shortcuts and focus --------------------------------------------------------


def test_question_mark_opens_the_shortcuts_which_trap_focus_and_give_it_back(page, tenant_a):
    agent = make_agent(tenant_a, "Helper", "sim-gpt@text;words=3")
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    box = page.get_by_label("Message", exact=True)
    page.keyboard.type("Why?")  # typed in the box: a question mark, not a shortcut
    expect(box).to_have_value("Why?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_hidden()

    page.keyboard.press("Shift+Tab")  # out of the box, to the page around it
    opener = page.evaluate("document.activeElement.outerHTML")
    page.keyboard.press("?")
    expect(dialog).to_be_visible()
    for name in ("New chat", "Focus the message box", "Stop the answer while it is being written"):
        expect(dialog).to_contain_text(name)
    expect(dialog.get_by_role("button", name="Close keyboard shortcuts")).to_be_focused()
    for _ in range(4):  # Tab and Shift+Tab stay inside
        page.keyboard.press("Tab")
        assert focus_is_inside(page, "#shortcuts")
        page.keyboard.press("Shift+Tab")
        assert focus_is_inside(page, "#shortcuts")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert page.evaluate("document.activeElement.outerHTML") == opener

    # The button beside the hint opens it too; Close gives focus back to that button.
    hint = page.get_by_role("button", name="Shortcuts ?")
    hint.click()
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Close keyboard shortcuts").press("Enter")
    expect(dialog).to_be_hidden()
    expect(hint).to_be_focused()


def test_shortcuts_focus_the_box_and_start_a_new_chat(page, tenant_a):
    agent = make_agent(tenant_a, "Quick", "sim-gpt@text;words=3")
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    chat_url = page.url
    box = page.get_by_label("Message", exact=True)
    page.get_by_role("link", name="New chat").focus()
    page.keyboard.press("Shift+Escape")
    expect(box).to_be_focused()
    page.get_by_role("link", name="New chat").focus()
    page.keyboard.press("/")
    expect(box).to_be_focused()
    expect(box).to_have_value("")  # the slash was the shortcut, not text

    page.keyboard.press("Control+Shift+O")
    page.wait_for_url(lambda url: url != chat_url)
    expect(page.get_by_role("button", name="Start chatting")).to_be_visible()


def test_escape_stops_the_answer_and_focus_stays_in_the_box(page, tenant_a):
    agent = make_agent(tenant_a, "Rambler", "sim-gpt@text;words=400;tps=40")
    page.set_viewport_size(PHONE)
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    ask(page, "Tell me a long story.")
    page.wait_for_function(STREAMING)
    page.keyboard.press("Escape")
    stopped = page.locator('.message.assistant[data-status="stopped"]')
    expect(stopped.locator(".note")).to_have_text("Stopped.")
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    [message] = stored_messages(tenant_a, Message.Role.ASSISTANT)
    assert message.status == Message.Status.STOPPED


@pytest.mark.parametrize("how", ["click", "keyboard"])
def test_after_stop_focus_is_on_the_box(page, tenant_a, how):
    agent = make_agent(tenant_a, "Talker", "sim-gpt@text;words=400;tps=40")
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    ask(page, "Tell me everything.")
    page.wait_for_function(STREAMING)
    stop = page.get_by_role("button", name="Stop")
    if how == "click":
        stop.click()
    else:
        stop.focus()
        page.keyboard.press("Enter")
    expect(page.locator('.message.assistant[data-status="stopped"]')).to_have_count(1)
    expect(stop).to_be_hidden()
    box = page.get_by_label("Message", exact=True)
    expect(box).to_be_focused()
    page.keyboard.type("Next question")  # straight on, no click needed
    expect(box).to_have_value("Next question")


# --- citations -----------------------------------------------------------------------------


def cited_answer(page: Page, tenant) -> None:
    with group_scope(tenant.group):
        source, _ = knowledge.source_add_text(
            group=tenant.group,
            title="Refund policy",
            queue=False,
            actor=tenant.owner,
            text="Refunds are paid within 14 days of a return.",
        )
        knowledge.source_process(group=tenant.group, source_id=source.pk)
    agent = make_agent(tenant, "Helpdesk", "sim-gpt@offline", tools=["searchKnowledge"])
    log_in(page, tenant.member)
    start_chat(page, agent)
    ask(page, "How fast are refunds paid?")
    expect(page.locator('.message.assistant[data-status="complete"] a.cite')).to_have_count(1)


def test_a_citation_opens_its_passage_beside_the_chat(page, tenant_a):
    cited_answer(page, tenant_a)
    chat_url = page.url
    cite = page.locator(".message.assistant a.cite")
    cite.click()
    panel = page.get_by_role("dialog", name="Refund policy")
    expect(panel).to_be_visible()
    expect(panel.locator(".knowledge-content.cited")).to_contain_text("14 days")
    expect(panel.get_by_role("link", name=re.compile("Open the passage"))).to_have_attribute(
        "target", "_blank"
    )
    assert page.url == chat_url
    box = panel.bounding_box()
    assert box["width"] < page.viewport_size["width"] / 2 + 100  # a side panel
    expect(panel.get_by_role("button", name="Close the passage")).to_be_focused()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(cite).to_be_focused()

    # The keyboard alone: the Sources list's link, Enter, then the Close button.
    source = page.locator(".message.assistant .sources a")
    source.focus()
    page.keyboard.press("Enter")
    expect(panel).to_be_visible()
    page.keyboard.press("Enter")  # on Close
    expect(panel).to_be_hidden()
    expect(source).to_be_focused()
    assert page.url == chat_url


def test_at_phone_width_the_passage_fills_the_screen_with_a_way_back(page, tenant_a):
    page.set_viewport_size(PHONE)
    cited_answer(page, tenant_a)
    chat_url = page.url
    cite = page.locator(".message.assistant a.cite")
    cite.click()
    panel = page.get_by_role("dialog", name="Refund policy")
    expect(panel.locator(".knowledge-content.cited")).to_contain_text("14 days")
    box = panel.bounding_box()
    assert box["width"] == PHONE["width"] and box["height"] == PHONE["height"]
    back = panel.get_by_role("button", name="Back to the conversation")
    expect(back).to_be_visible()
    back.click()
    expect(panel).to_be_hidden()
    expect(cite).to_be_focused()
    assert page.url == chat_url
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0

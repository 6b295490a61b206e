"""The chat in a real browser: streaming, tools, sources, stop, regenerate, history, safety."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from agents import knowledge
from chat.models import AIThread, Message
from ontology import services
from ontology.models import Thing
from ontology.scoping import group_scope
from tests.browser.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)

XSS = "<img src=x onerror=alert(1)> <script>alert(2)</script> [click me](javascript:alert(3))"


def make_agent(tenant, name: str, model: str, **properties) -> Thing:
    return services.thing_create(
        group=tenant.group,
        type=Thing.Type.AGENT,
        name=name,
        properties={"provider": "simulator", "model": model, **properties},
        actor=tenant.owner,
    )


def start_chat(page: Page, agent: Thing) -> None:
    page.goto("/")
    page.get_by_label(agent.name).check()
    page.get_by_role("button", name="Start chatting").click()
    expect(page.get_by_role("heading", name=f"Ask {agent.name} anything")).to_be_visible()
    # The page's modules have run: they focus the box once its keys are handled.
    expect(page.get_by_label("Message", exact=True)).to_be_focused()


def ask(page: Page, question: str) -> None:
    expect(page.locator("#conversation")).to_have_attribute("data-connected", "true")
    box = page.get_by_label("Message", exact=True)
    box.fill(question)
    box.press("Enter")


WATCH = """() => {
  window.seen = {chips: [], streamed: []};
  new MutationObserver(() => {
    document.querySelectorAll('.tool-chip').forEach((chip) => {
      if (!window.seen.chips.includes(chip.textContent)) window.seen.chips.push(chip.textContent);
    });
    const raw = document.querySelector('.message.assistant.streaming .raw');
    if (raw && raw.textContent) window.seen.streamed.push(raw.textContent.length);
  }).observe(document.getElementById('messages'),
             {childList: true, subtree: true, characterData: true});
}"""


def watch(page: Page) -> None:
    """Record what the page shows on the way (tool chips, streamed text), however brief."""
    page.evaluate(WATCH)


def seen(page: Page) -> dict:
    return page.evaluate("window.seen")


def stored_messages(tenant, role: str) -> list[Message]:
    with group_scope(tenant.group):
        return list(Message.objects.filter(role=role).order_by("created_at"))


def test_answer_streams_with_tool_chip_and_sources_then_survives_a_reload(page, tenant_a):
    with group_scope(tenant_a.group):
        source, _ = knowledge.source_add_text(
            group=tenant_a.group,
            title="Refund policy",
            queue=False,
            actor=tenant_a.owner,
            text="Refunds are paid within 14 days of a return.",
        )
        knowledge.source_process(group=tenant_a.group, source_id=source.pk)
    agent = make_agent(
        tenant_a, "Helpdesk", "sim-gpt@offline;tps=25;ttft_ms=200", tools=["searchKnowledge"]
    )
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    watch(page)
    ask(page, "How fast are refunds paid?")

    # Token by token: text shows while the answer is still streaming, with Stop offered.
    page.wait_for_function(
        "() => { const m = document.querySelector('.message.assistant.streaming .raw');"
        " return m && m.textContent.length > 0; }"
    )
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_disabled()

    answer = page.locator('.message.assistant[data-status="complete"]')
    expect(answer).to_be_visible()
    assert seen(page)["chips"] == ["Searching knowledge…", "Search knowledge · done"]
    growth = seen(page)["streamed"]
    assert len(set(growth)) > 5 and growth == sorted(growth)  # grew in many steps
    expect(answer.locator(".answer")).to_contain_text("14 days")
    source = answer.locator(".sources a")
    expect(source).to_have_text("Refund policy")
    expect(answer.locator("a.cite")).to_have_text("[1]")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    # The title is written after the first exchange and reaches the open page.
    expect(page.get_by_label("Conversation title")).to_have_value(re.compile(r"How fast"))

    page.reload()
    expect(page.locator(".message.user .bubble")).to_have_text("How fast are refunds paid?")
    expect(page.locator(".message.assistant .tool-chip")).to_have_text("Search knowledge · done")
    expect(page.locator(".message.assistant .answer")).to_contain_text("14 days")
    page.locator(".message.assistant a.cite").click()
    expect(page.get_by_role("heading", name="Refund policy")).to_be_visible()


def test_stop_keeps_the_partial_answer(page, tenant_a):
    agent = make_agent(tenant_a, "Talker", "sim-gpt@text;words=400;tps=40")
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    ask(page, "Tell me everything.")
    page.wait_for_function(
        "() => { const m = document.querySelector('.message.assistant.streaming .raw');"
        " return m && m.textContent.split(' ').length > 5; }"
    )
    page.get_by_role("button", name="Stop").click()
    stopped = page.locator('.message.assistant[data-status="stopped"]')
    expect(stopped.locator(".note")).to_have_text("Stopped.")
    [message] = stored_messages(tenant_a, Message.Role.ASSISTANT)
    assert message.status == Message.Status.STOPPED
    assert 5 < len(message.content.split()) < 400
    assert stopped.locator(".answer").inner_text().strip() == message.content.strip()


def test_regenerate_shows_the_new_answer_and_keeps_the_old_one(page, tenant_a):
    agent = make_agent(tenant_a, "Writer", "sim-gpt@text;words=6")
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    ask(page, "Write a line.")
    first = page.locator('.message.assistant[data-status="complete"]')
    expect(first).to_have_count(1)
    first_id = first.get_attribute("data-message-id")

    first.get_by_role("button", name="Regenerate").click()
    second = page.locator('.message.assistant[data-status="complete"]')
    expect(second).not_to_have_attribute("data-message-id", first_id)
    expect(second).to_have_count(1)

    answers = stored_messages(tenant_a, Message.Role.ASSISTANT)
    assert [m.status for m in answers] == [Message.Status.COMPLETE, Message.Status.COMPLETE]
    assert answers[0].parent_id == answers[1].parent_id  # versions of one answer (chat.tree)
    page.reload()
    expect(page.locator(".message.assistant")).to_have_count(1)
    expect(page.locator(".message.assistant")).to_have_attribute(
        "data-message-id", str(answers[1].pk)
    )


def test_markdown_code_copy_feedback_and_follow_ups(page, tenant_a):
    reply = "```python\nprint('hi')\n```\nFollow-ups:\n- How do I run it?\n- What does print do?"
    agent = make_agent(tenant_a, "Coder", "sim-gpt@text;reply=" + json.dumps(reply))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    ask(page, "How do I print?")

    answer = page.locator('.message.assistant[data-status="complete"]')
    expect(answer.locator("pre.codeblock .highlight")).to_contain_text("print('hi')")
    expect(answer.locator("pre.codeblock span.nb")).to_have_text("print")  # highlighted
    answer.get_by_role("button", name="Copy code").click()
    assert page.evaluate("navigator.clipboard.readText()") == "print('hi')\n"

    follow_ups = answer.locator(".follow-up")
    expect(follow_ups).to_have_text(["How do I run it?", "What does print do?"])
    expect(answer.locator(".answer")).not_to_contain_text("Follow-up questions")

    helpful = answer.get_by_role("button", name="Helpful", exact=True)
    helpful.click()
    expect(helpful).to_have_attribute("aria-pressed", "true")
    [message] = stored_messages(tenant_a, Message.Role.ASSISTANT)
    message.refresh_from_db()
    assert message.feedback == Message.Feedback.UP

    follow_ups.first.click()
    expect(page.locator(".message.user .bubble").last).to_have_text("How do I run it?")
    expect(page.locator('.message.assistant[data-status="complete"]')).to_have_count(2)


def test_untrusted_output_renders_inert(page, tenant_a):
    agent = make_agent(tenant_a, "Echo", "sim-gpt")  # the offline model repeats the question
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    ask(page, XSS)
    answer = page.locator('.message.assistant[data-status="complete"]')
    expect(answer.locator(".answer")).to_contain_text("<script>alert(2)</script>")

    for _ in range(2):  # as swapped in after streaming, and as rendered on a reload
        assert page.locator("#messages script").count() == 0
        assert page.locator("#messages img").count() == 0
        assert page.locator('#messages a[href^="javascript"]').count() == 0
        assert page.locator("#messages [onerror]").count() == 0
        assert page.dialogs == []
        page.reload()
        expect(page.locator(".message.assistant .answer")).to_contain_text("onerror=alert(1)")


def test_empty_and_oversize_messages_are_refused_and_nothing_is_sent(page, tenant_a, settings):
    agent = make_agent(tenant_a, "Quiet", "sim-gpt")
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    box = page.get_by_label("Message", exact=True)
    box.press("Enter")
    expect(page.get_by_role("alert")).to_have_text("Write a message first.")
    limit = settings.PARLEY_MAX_MESSAGE_CHARS
    box.fill("x" * (limit + 1))
    box.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text(f"at most {limit:,} characters")
    expect(box).to_have_value("x" * (limit + 1))  # kept, to be shortened
    assert stored_messages(tenant_a, Message.Role.USER) == []


def test_shift_enter_is_a_new_line_and_the_page_fits_a_phone(page, tenant_a):
    agent = make_agent(tenant_a, "Pocket", "sim-gpt@text;words=3")
    page.set_viewport_size({"width": 375, "height": 740})
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    box = page.get_by_label("Message", exact=True)
    box.type("first line")
    box.press("Shift+Enter")
    box.type("second line")
    expect(box).to_have_value("first line\nsecond line")
    box.press("Enter")
    expect(page.locator('.message.assistant[data-status="complete"]')).to_have_count(1)
    with group_scope(tenant_a.group):
        assert AIThread.objects.get().messages.filter(content="first line\nsecond line").exists()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    expect(page.get_by_role("button", name="Send")).to_be_in_viewport()


def test_a_second_tab_sees_the_run_and_the_question(page, browser, parley_url, tenant_a):
    agent = make_agent(tenant_a, "Shared", "sim-gpt@text;words=30;tps=40")
    log_in(page, tenant_a.member)
    start_chat(page, agent)
    other = page.context.new_page()  # same session, like a second tab
    other.goto(page.url)
    expect(other.get_by_role("heading", name="Ask Shared anything")).to_be_visible()
    expect(other.locator("#conversation")).to_have_attribute("data-connected", "true")
    ask(page, "Hello from tab one")
    expect(other.locator(".message.user .bubble")).to_have_text("Hello from tab one")
    expect(other.locator('.message.assistant[data-status="complete"]')).to_have_count(1)
    mine = page.locator('.message.assistant[data-status="complete"] .answer').inner_text()
    assert other.locator(".message.assistant .answer").inner_text() == mine


def tab_to(page: Page, name: str, *, limit: int = 60) -> None:
    """Press Tab until the focused element is the one called `name`, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement; const label = e.labels && e.labels[0];"
            " return (e.getAttribute('aria-label') || (label && label.textContent)"
            " || e.textContent || '').trim(); }"
        )
        if focused == name:
            return
    raise AssertionError(f"{name!r} is not reachable with the Tab key")


def test_the_keyboard_alone_starts_a_chat_sends_and_rates(page, tenant_a):
    agent = make_agent(tenant_a, "Keys", "sim-gpt@text;words=8")
    log_in(page, tenant_a.member)
    page.goto("/")
    tab_to(page, "Alpha Agent")  # the radio group starts on the first agent
    page.keyboard.press("ArrowDown")
    tab_to(page, "Start chatting")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Ask Keys anything")).to_be_visible()
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    expect(page.locator("#conversation")).to_have_attribute("data-connected", "true")
    page.keyboard.type("Hello there")
    page.keyboard.press("Enter")
    answer = page.locator('.message.assistant[data-status="complete"]')
    expect(answer).to_have_count(1)
    tab_to(page, "Helpful")
    page.keyboard.press("Enter")
    expect(answer.get_by_role("button", name="Helpful", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    with group_scope(tenant_a.group):
        assert AIThread.objects.get().agent_id == agent.pk

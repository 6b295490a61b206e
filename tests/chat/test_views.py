"""Chat pages over HTTP: lists, search, history, fragments, feedback, titles, and tenancy."""

import uuid

import pytest
from django.test import Client
from django.urls import reverse

from chat import services as chat_services
from chat.models import AIThread, Message
from ontology.models import Event, Thing
from ontology.scoping import group_scope, scopes_disabled
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

ANSWER = (
    "Refunds take **14 days** [1].\n\n```python\nprint('hi')\n```\n\n"
    "Follow-up questions:\n- How do I return an item?\n- Can I get store credit?"
)


def conversation(tenant, *, user=None, title="", question="How long do refunds take?"):
    user = user or tenant.member
    with group_scope(tenant.group):
        thread = chat_services.thread_create(
            group=tenant.group, agent=tenant.agent, user=user, title=title
        )
        chat_services.message_create_user(thread=thread, user=user, content=question)
        answer = chat_services.assistant_message_start(
            thread=thread, run_id=uuid.uuid4(), message_id=uuid.uuid4()
        )
        chat_services.assistant_message_finish(
            message=answer,
            status=Message.Status.COMPLETE,
            content=ANSWER,
            actor=user,
            tool_calls=[
                {
                    "id": "c1",
                    "name": "searchKnowledge",
                    "arguments": {},
                    "ok": True,
                    "summary": "1 passage found",
                }
            ],
            sources=[{"n": 1, "knowledge_id": 42, "title": "Refund policy", "score": 0.5}],
            usage={},
        )
    return thread, answer


def test_the_thread_page_renders_the_stored_history_safely(client, tenant_a):
    thread, _ = conversation(tenant_a, question="<b>bold?</b>")
    client.force_login(tenant_a.member)
    page = client.get(reverse("thread-detail", args=[thread.pk])).content.decode()
    assert "&lt;b&gt;bold?&lt;/b&gt;" in page  # the question is text, not markup
    assert "<strong>14 days</strong>" in page
    assert '<a href="/knowledge/42/" class="cite" title="Refund policy"' in page
    assert '<pre class="codeblock" data-lang="python">' in page
    assert "Search knowledge · done" in page
    assert page.count('class="follow-up"') == 2
    assert "Follow-up questions" not in page  # lifted out of the answer, offered as buttons
    assert "Regenerate" in page


def test_the_fragment_is_the_same_message_markup(client, tenant_a):
    thread, answer = conversation(tenant_a)
    client.force_login(tenant_a.member)
    response = client.get(reverse("message-fragment", args=[thread.pk, answer.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith(f'<article class="message assistant" id="m-{answer.pk}"')
    assert '<pre class="codeblock" data-lang="python">' in body


def test_list_shows_own_threads_newest_first_and_searches_titles_and_messages(client, tenant_a):
    conversation(tenant_a, title="Travel policy", question="Per diem in Paris?")
    conversation(tenant_a, title="Refunds", question="Store credit?")
    conversation(tenant_a, user=tenant_a.owner, title="Owner's private chat")
    client.force_login(tenant_a.member)
    page = client.get(reverse("thread-list")).content.decode()
    assert page.index("Refunds") < page.index("Travel policy")
    assert "Owner&#x27;s private chat" not in page
    assert "Alpha Agent" in page  # the agent picker
    assert "0 minutes" not in page and ("now<" in page or "seconds ago<" in page)

    found = client.get(reverse("thread-list"), {"q": "paris"}).content.decode()
    assert "Travel policy" in found and "Refunds" not in found
    found = client.get(reverse("thread-list"), {"q": "travel"}).content.decode()
    assert "Travel policy" in found and ">Refunds<" not in found
    client.force_login(tenant_a.owner)
    everyone = client.get(reverse("thread-list"), {"all": "1"}).content.decode()
    assert "Travel policy" in everyone and "Owner&#x27;s private chat" in everyone


def test_a_search_keeps_its_words_from_page_to_page(client, tenant_a):
    from chat.views import THREADS_PER_PAGE

    for n in range(THREADS_PER_PAGE + 1):
        conversation(tenant_a, title=f"Trip & more {n}")
    client.force_login(tenant_a.member)
    first = client.get(reverse("thread-list"), {"q": "trip & more"}).content.decode()
    assert 'href="?page=2&amp;q=trip+%26+more">Older' in first
    second = client.get(reverse("thread-list"), {"q": "trip & more", "page": 2}).content.decode()
    assert 'href="?page=1&amp;q=trip+%26+more">Newer' in second and ">Trip &amp; more 0<" in second


def test_thread_search_can_use_the_trigram_indexes_on_titles_and_messages(tenant_a):
    """The search's case-insensitive "contains" is the indexed expression, so a search need
    not read every message of the group. With sequential scans off, the predicate alone
    (no group index to fall back on) is planned on its trigram index or not at all."""
    from django.db import connection

    conversation(tenant_a, title="Travel policy", question="Per diem in Paris?")
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
    try:
        with scopes_disabled():
            messages = Message.objects.filter(content__icontains="paris").explain()
            titles = AIThread.objects.filter(title__icontains="travel").explain()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET enable_seqscan")
    assert "chat_message_content_trgm" in messages
    assert "chat_thread_title_trgm" in titles


def test_members_cannot_list_everyones_threads(client, tenant_a):
    conversation(tenant_a, user=tenant_a.owner, title="Board matters")
    client.force_login(tenant_a.member)
    assert "Board matters" not in client.get(reverse("thread-list"), {"all": "1"}).content.decode()


def test_new_chat_needs_one_of_the_groups_agents(client, tenant_a, tenant_b):
    client.force_login(tenant_a.member)
    response = client.post(reverse("thread-new"), {"agent": tenant_b.agent.pk})
    assert response.status_code == 302 and response.url == reverse("thread-list")
    with group_scope(tenant_a.group):
        assert not AIThread.objects.exists()
    response = client.post(reverse("thread-new"), {"agent": tenant_a.agent.pk})
    with group_scope(tenant_a.group):
        thread = AIThread.objects.get()
    assert response.url == reverse("thread-detail", args=[thread.pk])
    assert thread.user == tenant_a.member and thread.agent_id == tenant_a.agent.pk


def test_new_chat_reopens_the_users_untouched_thread_with_that_agent(client, tenant_a):
    client.force_login(tenant_a.member)
    first = client.post(reverse("thread-new"), {"agent": tenant_a.agent.pk}).url
    assert client.post(reverse("thread-new"), {"agent": tenant_a.agent.pk}).url == first
    with group_scope(tenant_a.group):
        thread = AIThread.objects.get()
        # Someone else's untouched thread is theirs: the owner gets a thread of their own.
        owner_thread = chat_services.thread_start(
            group=tenant_a.group, agent=tenant_a.agent, user=tenant_a.owner
        )
        assert owner_thread.pk != thread.pk
        chat_services.message_create_user(thread=thread, user=tenant_a.member, content="Hi")
    said = client.post(reverse("thread-new"), {"agent": tenant_a.agent.pk}).url
    assert said != first
    with group_scope(tenant_a.group):
        renamed = AIThread.objects.get(pk=int(said.rstrip("/").rsplit("/", 1)[1]))
        renamed.title = "Kept for later"
        renamed.save()
    assert client.post(reverse("thread-new"), {"agent": tenant_a.agent.pk}).url not in (first, said)
    with group_scope(tenant_a.group):
        assert AIThread.objects.filter(user=tenant_a.member).count() == 3
        tenant_a.agent.status = Thing.Status.DISABLED  # its untouched thread is not reopened
        tenant_a.agent.save()
    closed = client.post(reverse("thread-new"), {"agent": tenant_a.agent.pk}, follow=True)
    assert closed.redirect_chain[-1][0] == reverse("thread-list")


def test_another_tenants_thread_is_a_404_everywhere(client, tenant_a, tenant_b):
    thread, answer = conversation(tenant_b)
    client.force_login(tenant_a.owner)
    urls = [
        ("get", reverse("thread-detail", args=[thread.pk])),
        ("get", reverse("message-fragment", args=[thread.pk, answer.pk])),
        ("post", reverse("thread-rename", args=[thread.pk])),
        ("post", reverse("message-feedback", args=[thread.pk, answer.pk])),
    ]
    for method, url in urls:
        response = getattr(client, method)(url, {"title": "Mine now", "feedback": "down"})
        assert response.status_code == 404, url
    answer.refresh_from_db()
    thread.refresh_from_db()
    assert answer.feedback == "" and thread.title == ""
    assert "Mine now" not in client.get(reverse("thread-list"), {"all": "1"}).content.decode()


def test_a_message_of_another_thread_is_a_404(client, tenant_a):
    thread, _ = conversation(tenant_a)
    _, elsewhere = conversation(tenant_a)
    client.force_login(tenant_a.member)
    url = reverse("message-fragment", args=[thread.pk, elsewhere.pk])
    assert client.get(url).status_code == 404


def test_feedback_is_stored_audited_and_toggles(client, tenant_a):
    thread, answer = conversation(tenant_a)
    client.force_login(tenant_a.member)
    url = reverse("message-feedback", args=[thread.pk, answer.pk])
    response = client.post(url, {"feedback": "up"}, HTTP_ACCEPT="application/json")
    assert response.json() == {"feedback": "up"}
    answer.refresh_from_db()
    assert answer.feedback == Message.Feedback.UP
    client.post(url, {"feedback": "down"}, HTTP_ACCEPT="application/json")
    response = client.post(url, {"feedback": "down"}, HTTP_ACCEPT="application/json")
    assert response.json() == {"feedback": ""}  # the same thumb again takes it back
    with group_scope(tenant_a.group):
        votes = list(
            Event.objects.filter(type="message.feedback")
            .order_by("id")
            .values_list("metadata__to", flat=True)
        )
    assert votes == ["up", "down", ""]


def test_feedback_on_a_question_is_refused(client, tenant_a):
    thread, _ = conversation(tenant_a)
    with group_scope(tenant_a.group):
        question = thread.messages.get(role=Message.Role.USER)
    client.force_login(tenant_a.member)
    url = reverse("message-feedback", args=[thread.pk, question.pk])
    response = client.post(url, {"feedback": "up"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "Only answers take feedback."


def test_rename_is_validated_and_audited(client, tenant_a):
    thread, _ = conversation(tenant_a)
    client.force_login(tenant_a.member)
    url = reverse("thread-rename", args=[thread.pk])
    response = client.post(url, {"title": "   "}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    response = client.post(url, {"title": "  Refund   questions "}, HTTP_ACCEPT="application/json")
    assert response.json() == {"title": "Refund questions"}
    thread.refresh_from_db()
    assert thread.title == "Refund questions"
    with group_scope(tenant_a.group):
        event = Event.objects.get(type="thread.renamed")
    assert event.actor == tenant_a.member and event.metadata["to"] == "Refund questions"


def test_a_generated_title_never_overwrites_a_typed_one(tenant_a):
    thread, _ = conversation(tenant_a, title="Typed by a person")
    with group_scope(tenant_a.group):
        assert chat_services.thread_title_generated(thread=thread, title="Model's idea") is False
    thread.refresh_from_db()
    assert thread.title == "Typed by a person"


def test_writes_need_csrf(tenant_a):
    thread, answer = conversation(tenant_a)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(tenant_a.member)
    rename = reverse("thread-rename", args=[thread.pk])
    assert strict.post(rename, {"title": "x"}).status_code == 403
    url = reverse("message-feedback", args=[thread.pk, answer.pk])
    assert strict.post(url, {"feedback": "up"}).status_code == 403
    assert strict.post(reverse("thread-new"), {"agent": tenant_a.agent.pk}).status_code == 403


def test_pages_need_a_login_and_a_group(client, tenant_a):
    thread, _ = conversation(tenant_a)
    response = client.get(reverse("thread-detail", args=[thread.pk]))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    client.force_login(make_user("loner@example.com"))
    assert client.get(reverse("thread-detail", args=[thread.pk])).status_code == 404
    assert client.get(reverse("thread-list")).status_code == 404
    assert b"No organisation yet" in client.get(reverse("home")).content


@pytest.mark.usefixtures("clear_cache")
def test_page_writes_are_rate_limited_with_a_429_and_retry_after(client, tenant_a, settings):
    settings.PARLEY_HTTP_RATE_LIMITS = {
        **settings.PARLEY_HTTP_RATE_LIMITS,
        "chat": {"user": "2/d", "group": "100/d"},
    }
    thread, _ = conversation(tenant_a)
    client.force_login(tenant_a.member)
    url = reverse("thread-rename", args=[thread.pk])
    for title in ("One", "Two"):
        assert client.post(url, {"title": title}, HTTP_ACCEPT="application/json").status_code == 200
    refused = client.post(url, {"title": "Three"}, HTTP_ACCEPT="application/json")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert refused.json()["code"] == "rate_limited"
    thread.refresh_from_db()
    assert thread.title == "Two"

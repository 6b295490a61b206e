"""Built-in tools and the tool task, run as a worker would run them."""

import uuid
from decimal import Decimal

import pytest
from django.core import mail

from agents.catalog import Prices
from agents.models import ToolCall
from agents.tasks import run_tool
from agents.tools.registry import TOOLS
from billing.models import AICall
from billing.services import LedgerEntry, Usage, ai_calls_record
from chat import services as chat_services
from chat.models import AIThread
from ontology.models import Event, Thing, User
from ontology.scoping import group_scope


@pytest.fixture
def thread(tenant_a):
    with group_scope(tenant_a.group):
        return chat_services.thread_create(
            group=tenant_a.group, agent=tenant_a.agent, user=tenant_a.member
        )


def call(tenant, thread, name, arguments, call_id=None):
    call_id = call_id or f"run:{uuid.uuid4().hex}"
    with group_scope(tenant.group):
        ToolCall.objects.get_or_create(
            call_id=call_id,
            defaults={
                "group": tenant.group,
                "thread": thread,
                "agent_id": tenant.agent.pk,
                "user": tenant.member,
                "name": name,
                "arguments": arguments,
            },
        )
    return call_id, run_tool(group_id=tenant.group.pk, call_id=call_id)


def test_a_tool_call_runs_once_however_often_it_is_delivered(tenant_a, thread):
    call_id, first = call(tenant_a, thread, "createTask", {"title": "Order toner"})
    _, again = call(tenant_a, thread, "createTask", {"title": "Order toner"}, call_id=call_id)
    assert first == again and first["ok"]
    with group_scope(tenant_a.group):
        assert Thing.objects.filter(type="task", name="Order toner").count() == 1


def test_call_human_hands_the_thread_over_and_mails_the_owners(
    tenant_a, thread, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _, outcome = call(tenant_a, thread, "callHuman", {"reason": "Wants to talk to billing"})
    assert outcome == {"ok": True, "result": {"handed_off": True, "notified": 1}, "error": ""}
    with group_scope(tenant_a.group):
        thread = AIThread.objects.get(pk=thread.pk)
        event = Event.objects.get(type="thread.handed_off")
    assert thread.status == AIThread.Status.HANDED_OFF
    assert thread.handoff_reason == "Wants to talk to billing"
    assert event.actor == tenant_a.member
    (message,) = mail.outbox
    assert message.to == [tenant_a.owner.email]
    assert "Wants to talk to billing" in message.body


def test_update_profile_changes_only_the_caller(tenant_a, thread):
    _, outcome = call(
        tenant_a,
        thread,
        "updateProfile",
        {"displayName": "Max M.", "preferences": {"tone": "brief"}},
    )
    assert outcome["ok"]
    member = User.objects.get(pk=tenant_a.member.pk)
    assert (member.display_name, member.preferences) == ("Max M.", {"tone": "brief"})
    assert User.objects.get(pk=tenant_a.owner.pk).display_name == ""
    with group_scope(tenant_a.group):
        assert Event.objects.get(type="user.profile_updated").target_id == str(member.pk)


def test_update_profile_with_nothing_to_change_is_a_clear_failure(tenant_a, thread):
    _, outcome = call(tenant_a, thread, "updateProfile", {})
    assert outcome["ok"] is False and "Nothing to update" in outcome["error"]


def test_a_failed_tool_leaves_no_half_written_rows(tenant_a, thread):
    # dueDate passes the JSON schema's loose "format" but not the task validator.
    _, outcome = call(tenant_a, thread, "createTask", {"title": "Later", "dueDate": "someday"})
    assert outcome["ok"] is False and "Due date" in outcome["error"]
    with group_scope(tenant_a.group):
        assert not Thing.objects.filter(type="task").exists()
        assert ToolCall.objects.get().status == ToolCall.Status.FAILED


def test_tool_arguments_are_checked_against_the_schema():
    spec = TOOLS["createTask"]
    assert spec.validation_errors({"title": "ok"}) == []
    errors = spec.validation_errors({"title": 5, "colour": "red"})
    assert any("title" in e for e in errors)
    assert any("colour" in e for e in errors)


def test_a_replayed_ledger_write_never_charges_twice(tenant_a):
    entry = LedgerEntry(
        id=uuid.uuid4(),
        group_id=tenant_a.group.pk,
        user_id=None,
        agent_id=None,
        thread_id=None,
        run_id=None,
        purpose="chat",
        provider="openai",
        model="gpt-4o-mini",
        step=0,
        attempt=0,
        usage=Usage(1000, 500, 200),
        prices=Prices(Decimal("0.15"), Decimal("0.60"), Decimal("0.075")),
        latency_ms=10,
        ttft_ms=5,
        status="ok",
    )
    ai_calls_record(entries=[entry])
    ai_calls_record(entries=[entry])
    with group_scope(tenant_a.group):
        (row,) = AICall.objects.all()
    # 800 uncached input at 0.15, 200 cached at 0.075, 500 output at 0.60 per million
    assert row.cost == Decimal("0.000435")

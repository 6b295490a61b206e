"""ontology.reads: a tenant-owned read with its SQL made once per process, giving the rows
the manager's queryset gives, in the active group only."""

import uuid

import pytest
from django.db import connection
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext

from chat import selectors
from chat import services as chat_services
from chat.models import Message
from ontology.reads import Read
from ontology.scoping import ScopeError, group_scope, scopes_disabled

pytestmark = pytest.mark.django_db

FIELDS = [f.attname for f in Message._meta.concrete_fields]


@pytest.fixture
def compiles(monkeypatch):
    """How many SELECTs Django compiled during the test."""
    count = [0]
    compile_statement = SQLCompiler.as_sql

    def counted(self, *args, **kwargs):
        count[0] += 1
        return compile_statement(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counted)
    return count


def a_thread(tenant, *, turns: int = 2):
    """A thread with `turns` questions and answers, the answers' JSON fields filled."""
    with group_scope(tenant.group):
        thread = chat_services.thread_create(
            group=tenant.group, agent=tenant.agent, user=tenant.member
        )
        for n in range(turns):
            chat_services.message_create_user(
                thread=thread, user=tenant.member, content=f"question {n} é"
            )
            answer = chat_services.assistant_message_start(
                thread=thread, run_id=uuid.uuid4(), message_id=uuid.uuid4()
            )
            chat_services.assistant_message_finish(
                message=answer,
                status=Message.Status.COMPLETE,
                content=f"answer {n}",
                actor=tenant.member,
                tool_calls=[{"name": "search", "arguments": {"q": "ü"}}],
                sources=[{"title": "Policy", "score": 0.5}],
                usage={"input_tokens": 12, "output_tokens": n},
            )
    return thread


def values(messages) -> list[tuple]:
    return [tuple(getattr(m, name) for name in FIELDS) for m in messages]


def test_the_rows_are_the_managers_in_its_order_with_json_decoded(tenant_a):
    thread = a_thread(tenant_a)
    read = Read(Message, "thread_id")
    with group_scope(tenant_a.group):
        mine = read(thread_id=thread.pk)
        theirs = list(Message.objects.filter(thread=thread))
    assert len(mine) == 4
    assert values(mine) == values(theirs)
    assert [m.role for m in mine] == ["user", "assistant"] * 2
    answer = mine[1]
    assert answer.tool_calls == [{"name": "search", "arguments": {"q": "ü"}}]
    assert answer.usage == {"input_tokens": 12, "output_tokens": 0}
    assert answer.created_at.tzinfo is not None
    assert not answer._state.adding and answer._state.db == "default"


def test_the_statement_is_made_once_and_binds_the_values(tenant_a, compiles):
    first, second = a_thread(tenant_a, turns=1), a_thread(tenant_a, turns=2)
    read = Read(Message, "thread_id")
    before = compiles[0]
    with group_scope(tenant_a.group), CaptureQueriesContext(connection) as queries:
        assert len(read(thread_id=first.pk)) == 2
        assert compiles[0] == before + 1  # the first run compiles it
        assert len(read(thread_id=second.pk)) == 4
        assert len(read(thread_id=first.pk)) == 2
    assert compiles[0] == before + 1  # and only the first
    assert len(queries) == 3
    assert len({q["sql"].split(" WHERE ")[0] for q in queries}) == 1
    assert str(second.pk) in queries[1]["sql"] and str(tenant_a.group.pk) in queries[1]["sql"]


def test_another_groups_thread_reads_nothing(tenant_a, tenant_b):
    theirs = a_thread(tenant_b)
    mine = a_thread(tenant_a, turns=1)
    read = Read(Message, "thread_id")
    with group_scope(tenant_a.group):
        assert read(thread_id=mine.pk)  # the statement is made, in tenant A's scope
        assert read(thread_id=theirs.pk) == []
    with group_scope(tenant_b.group):
        assert len(read(thread_id=theirs.pk)) == 4  # the same statement, B's group bound
        assert read(thread_id=mine.pk) == []


def test_outside_one_group_the_manager_decides(tenant_a, tenant_b):
    thread = a_thread(tenant_a, turns=1)
    read = Read(Message, "thread_id")
    with pytest.raises(ScopeError):
        read(thread_id=thread.pk)  # no group: refused, as the manager refuses
    with group_scope(tenant_a.group, tenant_b.group):
        assert len(read(thread_id=thread.pk)) == 2  # several groups: the manager's filter
    with group_scope(tenant_b.group), scopes_disabled():
        assert len(read(thread_id=thread.pk)) == 2  # scopes disabled: every group's rows


def test_only_integer_keys_are_bound():
    with pytest.raises(TypeError):
        Read(Message, "client_id")
    with pytest.raises(TypeError):
        Read(Message, "run_id")
    with pytest.raises(TypeError):
        Read(Message, "thread_id")(thread=1)


def test_a_turn_reads_its_thread_with_the_statement_made_once(tenant_a, compiles):
    """chat.selectors.thread_rows, which a turn's start (ThreadConversation.read) and every
    page of a thread read through: the shown branch is the same as before."""
    thread = a_thread(tenant_a)
    with group_scope(tenant_a.group):
        selectors.thread_rows(thread=thread)  # the process's first: made here, or earlier
        before = compiles[0]
        shown = selectors.thread_messages(thread=thread)
        assert compiles[0] == before
        contents = [m.content for m in shown]
        assert contents == ["question 0 é", "answer 0", "question 1 é", "answer 1"]

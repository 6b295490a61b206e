"""ontology.rows: a row inserted or updated with its SQL made once per process, the same
row Django's own save() writes."""

import uuid

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models.signals import post_save
from django.db.models.sql.compiler import SQLInsertCompiler, SQLUpdateCompiler
from django.test.utils import CaptureQueriesContext

from chat import services as chat_services
from chat.models import Message
from ontology import services
from ontology.models import Event, Thing
from ontology.rows import Batch, insert, update
from ontology.scoping import group_scope, scopes_disabled

pytestmark = pytest.mark.django_db

COMPARED = ("group_id", "type", "actor_id", "target_type", "target_id", "target_label", "metadata")


def event(tenant, **fields) -> Event:
    values = {
        "group": tenant.group,
        "type": "message.sent",
        "actor": tenant.member,
        "target_type": "message",
        "target_id": "42",
        "target_label": "A question",
        "metadata": {"thread_id": 7, "chars": 12, "note": "héllo"},
    }
    return Event(**{**values, **fields})


@pytest.fixture
def compiles(monkeypatch):
    """How many INSERTs and UPDATEs Django compiled during the test."""
    count = [0]
    for compiler in (SQLInsertCompiler, SQLUpdateCompiler):
        compile_statement = compiler.as_sql

        def counted(self, *args, _compile=compile_statement, **kwargs):
            count[0] += 1
            return _compile(self, *args, **kwargs)

        monkeypatch.setattr(compiler, "as_sql", counted)
    return count


def test_an_event_is_the_row_save_writes_with_no_compiling(tenant_a, compiles):
    with group_scope(tenant_a.group):
        inserted = insert(event(tenant_a))
        saved = event(tenant_a)
        saved.save()
        assert compiles[0] == 1  # save() compiled its INSERT; insert() did not
        assert inserted.pk is not None and inserted.pk != saved.pk
        assert not inserted._state.adding
        mine, theirs = (Event.objects.values(*COMPARED).get(pk=e.pk) for e in (inserted, saved))
        assert mine == theirs
        stored = Event.objects.get(pk=inserted.pk)
        assert stored.timestamp == inserted.timestamp  # the default, applied once and kept
        assert stored.metadata == {"thread_id": 7, "chars": 12, "note": "héllo"}


def test_the_statement_is_made_once_and_sent_with_parameters(tenant_a, compiles):
    with group_scope(tenant_a.group), CaptureQueriesContext(connection) as queries:
        for n in range(3):
            insert(event(tenant_a, target_id=str(n)))
    assert compiles[0] == 0
    assert len(queries) == 3
    assert len({q["sql"].split(" VALUES ")[0] for q in queries}) == 1
    with group_scope(tenant_a.group):
        assert sorted(
            Event.objects.filter(type="message.sent").values_list("target_id", flat=True)
        ) == ["0", "1", "2"]


def test_a_message_keeps_its_own_id_and_its_defaults(tenant_a):
    thread = a_thread(tenant_a)
    with group_scope(tenant_a.group):
        message_id, run_id = uuid.uuid4(), uuid.uuid4()
        inserted = insert(
            Message(
                id=message_id,
                group=tenant_a.group,
                thread=thread,
                role=Message.Role.ASSISTANT,
                status=Message.Status.STREAMING,
                run_id=run_id,
            )
        )
        assert inserted.pk == message_id
        stored = Message.objects.get(pk=message_id)
    assert (stored.run_id, stored.status, stored.content) == (run_id, "streaming", "")
    assert (stored.tool_calls, stored.sources, stored.usage) == ([], [], {})
    assert stored.created_at == inserted.created_at


def test_a_row_for_another_group_is_written_as_save_writes_it(tenant_a, tenant_b):
    """Which groups a write may reach is the services' rule, as around save(): a person's
    account events go to each of their groups from whichever group's page they are on."""
    with group_scope(tenant_a.group):
        inserted = insert(event(tenant_b))
    with scopes_disabled():
        assert Event.objects.get(pk=inserted.pk).group_id == tenant_b.group.pk


def test_a_model_whose_saves_are_listened_to_is_saved_by_django(tenant_a):
    heard = []

    def listener(sender, instance, created, **_):
        heard.append((instance.pk, created))

    post_save.connect(listener, sender=Event, weak=False)
    try:
        with group_scope(tenant_a.group):
            inserted = insert(event(tenant_a))
    finally:
        post_save.disconnect(listener, sender=Event)
    assert heard == [(inserted.pk, True)]


def a_thread(tenant):
    agent = services.thing_create(
        group=tenant.group, type=Thing.Type.AGENT, name="A", actor=tenant.owner
    )
    with group_scope(tenant.group):
        return chat_services.thread_create(group=tenant.group, agent=agent, user=tenant.member)


def test_an_update_writes_the_fields_named_and_nothing_else(tenant_a, compiles):
    thread = a_thread(tenant_a)
    with group_scope(tenant_a.group):
        question = chat_services.message_create_user(
            thread=thread, user=tenant_a.member, content="Hello?"
        )
        compiles[0] = 0
        stored = Message.objects.get(pk=question.pk)
        stored.content, stored.error_code = "Edited", "kept-in-memory-only"
        stored.usage = {"input": 3, "cost": "0.001"}
        update(stored, ["content", "usage"])
        assert compiles[0] == 0
        again = Message.objects.get(pk=question.pk)
    assert (again.content, again.usage, again.error_code) == (
        "Edited",
        {"input": 3, "cost": "0.001"},
        "",
    )


def test_an_update_of_a_row_that_is_gone_raises_as_save_does(tenant_a):
    thread = a_thread(tenant_a)
    with group_scope(tenant_a.group):
        question = chat_services.message_create_user(
            thread=thread, user=tenant_a.member, content="Hello?"
        )
        Message.objects.filter(pk=question.pk).delete()
        question.content = "Too late"
        with pytest.raises(DatabaseError, match="did not affect any rows"):
            update(question, ["content"])


def test_a_turns_rows_are_written_with_no_compiled_insert_or_update(tenant_a, compiles):
    """The question, its audit event and the thread's last activity: no statement compiled
    by Django per row (their reads are compiled still)."""
    thread = a_thread(tenant_a)
    compiles[0] = 0
    with group_scope(tenant_a.group):
        question = chat_services.message_create_user(
            thread=thread, user=tenant_a.member, content="Hello?", branch=[]
        )
    assert compiles[0] == 0
    thread.refresh_from_db()
    assert thread.last_activity_at == question.created_at
    with group_scope(tenant_a.group):
        assert Event.objects.filter(type="message.sent", target_id=str(question.pk)).exists()


def statements(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries]


def test_a_batch_writes_its_rows_in_one_statement_and_reads_back_their_keys(tenant_a):
    """A turn's start: the question, the thread's last activity, the question's event and the
    answer's row, hanging from the question, in one round trip with no BEGIN or COMMIT; the
    event's key is read back as an insert() reads it."""
    thread = a_thread(tenant_a)
    batch = Batch()
    with group_scope(tenant_a.group):
        with CaptureQueriesContext(connection) as queued:
            question = chat_services.message_create_user(
                thread=thread, user=tenant_a.member, content="Hello?", branch=[], batch=batch
            )
            answer = chat_services.assistant_message_start(
                thread=thread,
                run_id=uuid.uuid4(),
                message_id=uuid.uuid4(),
                parent_id=question.pk,
                batch=batch,
            )
        assert statements(queued) == []  # nothing is written before `write`
        assert not Message.objects.filter(thread=thread).exists()
        with CaptureQueriesContext(connection) as written:
            batch.write()
    assert len(statements(written)) == 1, statements(written)
    assert statements(written)[0].startswith("WITH ")
    with group_scope(tenant_a.group):
        stored = {m.pk: m for m in Message.objects.filter(thread=thread)}
        event = Event.objects.get(type="message.sent", target_id=str(question.pk))
    assert set(stored) == {question.pk, answer.pk}
    assert stored[answer.pk].parent_id == question.pk
    assert stored[answer.pk].status == Message.Status.STREAMING
    assert not question._state.adding and not answer._state.adding
    thread.refresh_from_db()
    assert thread.last_activity_at == question.created_at
    assert event.metadata == {"thread_id": thread.pk, "chars": 6}


def test_a_batch_writes_all_of_its_rows_or_none(tenant_a):
    """One statement: when one row is refused (here an answer whose id is taken), neither
    the question nor its event is written."""
    thread = a_thread(tenant_a)
    with group_scope(tenant_a.group):
        taken = chat_services.message_create_user(
            thread=thread, user=tenant_a.member, content="First", branch=[]
        )
        batch = Batch()
        question = chat_services.message_create_user(
            thread=thread, user=tenant_a.member, content="Second", branch=[], batch=batch
        )
        chat_services.assistant_message_start(
            thread=thread, run_id=uuid.uuid4(), message_id=taken.pk, batch=batch
        )
        with pytest.raises(DatabaseError), transaction.atomic():
            batch.write()
        assert not Message.objects.filter(pk=question.pk).exists()
        assert not Event.objects.filter(target_id=str(question.pk)).exists()


def test_a_batched_update_of_a_row_that_is_gone_raises_as_save_does(tenant_a):
    thread = a_thread(tenant_a)
    with group_scope(tenant_a.group):
        gone = chat_services.message_create_user(
            thread=thread, user=tenant_a.member, content="Hello?", branch=[]
        )
        Message.objects.filter(pk=gone.pk).delete()
        gone.content = "Too late"
        batch = Batch()
        batch.insert(event(tenant_a))
        batch.update(gone, ["content"])
        with pytest.raises(DatabaseError, match="did not affect any rows"):
            batch.write()


def test_a_row_save_must_write_goes_after_the_rows_queued_before_it(tenant_a):
    """A model whose saves are listened to is written by save(), at once: the rows queued
    before it are written first, so they reach the database in the order given."""
    thread = a_thread(tenant_a)
    batch = Batch()
    order = []

    def listened(sender, instance, **kwargs):
        order.append(Message.objects.filter(thread=thread).count())

    post_save.connect(listened, sender=Event)
    try:
        with group_scope(tenant_a.group):
            chat_services.message_create_user(
                thread=thread, user=tenant_a.member, content="Hello?", branch=[], batch=batch
            )
            batch.write()
    finally:
        post_save.disconnect(listened, sender=Event)
    assert order == [1]  # the question was in when its event was saved


def test_an_answers_end_writes_the_answer_thread_and_event_in_one_statement(tenant_a):
    """assistant_message_finish: after the ledger's own statements, the answer, the thread's
    last activity and the audit event go in one statement, inside the answer's transaction."""
    thread = a_thread(tenant_a)
    with group_scope(tenant_a.group):
        question = chat_services.message_create_user(
            thread=thread, user=tenant_a.member, content="Hello?", branch=[]
        )
        answer = chat_services.assistant_message_start(
            thread=thread, run_id=uuid.uuid4(), message_id=uuid.uuid4(), parent_id=question.pk
        )
        ledger = []
        with CaptureQueriesContext(connection) as queries:
            chat_services.assistant_message_finish(
                message=answer,
                status=Message.Status.COMPLETE,
                content="Hi.",
                actor=tenant_a.member,
                tool_calls=[],
                sources=[],
                usage={"input": 3, "output": 2, "cost": "0.00001"},
                ledger_write=lambda: ledger.append(len(queries.captured_queries)),
            )
        stored = Message.objects.get(pk=answer.pk)
        event = Event.objects.get(type="ai_response_completed", target_id=str(answer.pk))
    shapes = [q["sql"].split()[0] for q in queries.captured_queries]
    # the answer's transaction (a savepoint inside the test's own) around one statement
    assert shapes == ["SAVEPOINT", "WITH", "RELEASE"], statements(queries)
    assert ledger == [1]  # the ledger writes inside the transaction, before the batch
    assert (stored.status, stored.content, stored.usage["output"]) == ("complete", "Hi.", 2)
    thread.refresh_from_db()
    assert thread.last_activity_at == stored.updated_at
    assert event.metadata["run_id"] == str(answer.run_id)

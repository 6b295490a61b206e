"""The run log writer: every run of the process in one insert per tick, and one bad row
costs only its own run."""

import uuid

import pytest
from channels.db import database_sync_to_async

from chat.models import RunEvent
from chat.runlog import RunLogWriter
from ontology.scoping import group_scope
from tests.chat.test_consumers import chat_setup

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("thread_connections"),
]


def event(seq=1, **fields):
    return {"type": "delta", "run_id": str(uuid.uuid4()), "seq": seq, "text": "x", **fields}


@database_sync_to_async
def stored(group, run_id):
    with group_scope(group):
        return [e.payload for e in RunEvent.objects.filter(run_id=run_id).order_by("seq")]


async def test_runs_in_one_batch_are_stored_in_order_each_in_its_own_group():
    tenant, thread = await chat_setup()
    other, other_thread = await chat_setup(slug="bravo")
    writer = RunLogWriter()
    first, second = event(), event()
    for seq in (1, 2, 3):
        writer.add(
            group_id=tenant.group.pk,
            thread_id=thread.pk,
            event={**first, "seq": seq, "text": f"a{seq}"},
        )
        writer.add(
            group_id=other.group.pk,
            thread_id=other_thread.pk,
            event={**second, "seq": seq, "text": f"b{seq}"},
        )
    await writer.sync()
    await writer.close()

    assert [e["text"] for e in await stored(tenant.group, first["run_id"])] == ["a1", "a2", "a3"]
    assert await stored(tenant.group, second["run_id"]) == []  # the other tenant's run
    assert [e["text"] for e in await stored(other.group, second["run_id"])] == ["b1", "b2", "b3"]


async def test_a_row_the_database_refuses_costs_only_its_own_run():
    tenant, thread = await chat_setup()
    writer = RunLogWriter()
    good, orphan = event(), event()
    writer.add(group_id=tenant.group.pk, thread_id=thread.pk, event=good)
    writer.add(group_id=tenant.group.pk, thread_id=thread.pk + 10_000, event=orphan)  # no thread
    await writer.sync()  # the batch is refused; written run by run, the orphan dropped
    later = event()
    writer.add(group_id=tenant.group.pk, thread_id=thread.pk, event=later)
    await writer.sync()
    await writer.close()

    assert [e["run_id"] for e in await stored(tenant.group, good["run_id"])] == [good["run_id"]]
    assert await stored(tenant.group, orphan["run_id"]) == []
    assert len(await stored(tenant.group, later["run_id"])) == 1


async def test_untrusted_strings_are_stored_without_nul_or_lone_surrogates():
    tenant, thread = await chat_setup()
    writer = RunLogWriter()
    started = event(type="tool.started", arguments={"query": "a\x00b\ud800c", "n": [1, "\x00"]})
    writer.add(group_id=tenant.group.pk, thread_id=thread.pk, event=started)
    await writer.sync()
    await writer.close()

    (payload,) = await stored(tenant.group, started["run_id"])
    assert payload["arguments"] == {"query": "ab?c", "n": [1, ""]}

"""A first answer that was stopped still names its thread, with a metered title call."""

import pytest
from channels.db import database_sync_to_async

from tests.chat.test_consumers import (
    chat_setup,
    connect,
    frames_until,
    send,
    title_calls,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_runs", "thread_connections", "clear_cache"),
]


async def test_a_stopped_first_answer_still_titles_the_thread(sim, settings):
    settings.PARLEY_TITLE_MODEL = "simulator/sim-gpt"  # the offline model names it at once
    tenant, thread = await chat_setup(model="sim-gpt@slow;ttft_ms=0;tps=30;words=400")
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="How do refunds work for damaged goods?")
    await frames_until(tab, "delta")
    await send(tab, type="run.stop")
    await frames_until(tab, "run.stopped")

    updated = (await frames_until(tab, "thread.updated"))[-1]
    assert updated["thread"] == {"id": thread.pk, "title": "How do refunds work for damaged"}
    await database_sync_to_async(thread.refresh_from_db)()
    assert thread.title == "How do refunds work for damaged"
    [call] = await title_calls(tenant)  # metered like any other title call
    assert (call.status, call.thread_id) == ("ok", thread.pk) and call.cost > 0
    await tab.disconnect()

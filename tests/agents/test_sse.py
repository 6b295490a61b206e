"""The server-sent-event reader the OpenAI wire parses chunks with."""

from agents.providers.openai_wire import sse_data


async def lines(*items):
    for item in items:
        yield item


async def events(*items):
    return [data async for data in sse_data(lines(*items))]


async def test_each_event_is_its_data_lines_joined():
    assert await events(
        ": a comment", "event: message", 'data: {"a":', "data:1}", "", "data: [DONE]", ""
    ) == ['{"a":\n1}', "[DONE]"]


async def test_blank_lines_alone_make_no_event_and_a_last_event_without_one_still_counts():
    assert await events("", "", "data: x", "id: 3", "retry: 10", "data:  two spaces") == [
        "x\n two spaces"
    ]

"""The server-sent-event reader both wires parse with (bytes as the network gives them)."""

from agents.providers.sse import sse_events


async def chunks(*items: bytes):
    for item in items:
        yield item


async def batches(*items: bytes) -> list[list[str]]:
    return [events async for events in sse_events(chunks(*items))]


async def test_each_event_is_its_data_lines_joined():
    stream = b': a comment\nevent: message\ndata: {"a":\ndata:1}\n\ndata: [DONE]\n\n'
    assert await batches(stream) == [['{"a":\n1}', "[DONE]"]]


async def test_blank_lines_alone_make_no_event_and_a_last_event_without_one_still_counts():
    assert await batches(b"\n\ndata: x\nid: 3\nretry: 10\ndata:  two spaces") == [
        ["x\n two spaces"]
    ]


async def test_events_split_anywhere_across_reads_arrive_whole_one_list_per_read():
    stream = 'data: {"t": "héllo"}\r\n\r\ndata: {"t": "wörld"}\r\n\r\ndata: [DONE]\r\n\r\n'
    raw = stream.encode()
    cut = raw.index("é".encode()) + 1  # inside a two-byte character
    assert await batches(raw[:cut], raw[cut:40], raw[40:]) == [
        ['{"t": "héllo"}'],
        ['{"t": "wörld"}', "[DONE]"],
    ]


async def test_a_read_that_completes_no_event_yields_nothing():
    assert await batches(b"data: a", b"b\n", b"\n") == [["ab"]]

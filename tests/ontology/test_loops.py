"""One object per event loop (ontology.loops.PerLoop)."""

import asyncio

from ontology.loops import PerLoop


def test_each_loop_has_its_own_object_and_a_popped_one_is_made_again():
    per_loop = PerLoop(object)

    async def twice():
        first = per_loop.get()
        assert per_loop.get() is first
        return first

    one, other = asyncio.run(twice()), asyncio.run(twice())
    assert one is not other

    async def popped():
        first = per_loop.get()
        assert per_loop.pop() is first
        assert per_loop.get() is not first

    asyncio.run(popped())

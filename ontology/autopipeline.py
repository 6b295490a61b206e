"""Redis commands from many coroutines, sent together: auto-pipelining.

Every socket that opens joins its thread's group and reads its thread's lock; every turn
takes a lock and counts its rate limit. Each was one command on a connection of its own,
and a burst of them (200 sockets opening at once) made a connection pool open a new
connection for nearly every one, a TCP and Redis handshake on the event loop each: 100
joins cost 40 ms of the loop's CPU on cold pools, 9 ms on warm ones, and 3-4 ms as one
pipeline (measured on this project's dev Redis).

`AutoPipeline(client)` has redis-py's asyncio command methods (`get`, `eval`, `zadd`,
`evalsha` through a registered script...). A command is queued, and the commands queued
in one turn of the event loop are sent at its next turn as one pipeline, on one of the
pool's connections (ontology.turn_batches); pipelines of later turns do not wait for it
(one pipeline in flight at a time made every command under load wait a turn more for
the one before). Alone, a command waits one turn of the loop more than it would on its
own; in a burst, the commands of a turn share a round trip and a connection instead of
each taking one.

Each command's answer, or its error, is its own: one command's error does not fail the
others. A connection error (after the client's own retries) fails every command of that
pipeline, as it fails a command sent alone. Only for quick commands: a blocking one
(BLPOP, BZPOPMIN) would hold up every command behind it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncCoreCommands

from ontology.turn_batches import Failed, TurnBatcher


class AutoPipeline(TurnBatcher, AsyncCoreCommands):
    """A client's commands, sent in pipelines of what is waiting (see the module)."""

    def __init__(self, client: Redis) -> None:
        super().__init__()
        self.client = client

    @classmethod
    def of(cls, client: Redis) -> AutoPipeline:
        """The client's one AutoPipeline (a client belongs to one event loop), kept on the
        client: it lives as long as the client does."""
        found = getattr(client, "_parley_autopipeline", None)
        if found is None:
            found = client._parley_autopipeline = cls(client)
        return found

    def get_encoder(self):  # some command methods encode their arguments themselves
        return self.client.get_encoder()

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        return await self.queue(*args, **options)

    def queue(self, *args: Any, **options: Any) -> asyncio.Future:
        """Queue a command (its words as Redis takes them); its answer's future. Commands
        queued in the same turn of the event loop go in the same pipeline, in order."""
        return self.submit((args, options))

    async def _run(self, commands: list[tuple[tuple, dict]]) -> list[Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            for args, options in commands:
                pipe.execute_command(*args, **options)
            answers = await pipe.execute(raise_on_error=False)
        return [Failed(a) if isinstance(a, Exception) else a for a in answers]

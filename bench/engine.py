"""Platform overhead of one agent turn, against the provider simulator with zero delay.

    make bench                    (all benchmarks)
    python -m config.devservers exec -- .venv/bin/python bench/engine.py [--turns 300]

For each turn it measures time to first delta and total time, once through the
whole platform (AgentRun: load agent and history, create the message, stream,
write the ledger row and the message, audit event) and once calling the OpenAI
SDK directly against the same simulator. Turns alternate between the two so
both see the same machine state. Prints p50/p99 and the platform's overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from channels.db import database_sync_to_async  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402

from agents.engine import AgentRun  # noqa: E402
from bench.common import simulator_process  # noqa: E402
from chat import services as chat_services  # noqa: E402
from chat.conversation import ThreadConversation  # noqa: E402
from chat.models import AIThread  # noqa: E402
from ontology import services  # noqa: E402
from ontology.models import Group, Thing, User  # noqa: E402
from ontology.scoping import group_scope  # noqa: E402

MODEL = "sim-gpt@text;words=40"
QUESTION = "Summarise our travel policy in two sentences."
SYSTEM = "You are a helpful assistant."


class FirstDelta:
    def __init__(self) -> None:
        self.at: float | None = None

    async def emit(self, event: dict) -> None:
        if self.at is None and event["type"] == "delta":
            self.at = time.perf_counter()


def setup_tenant() -> tuple[Group, User, Thing]:
    group = Group.objects.filter(slug="bench").first()
    user = User.objects.filter(username="bench@parley.example").first()
    if user is None:
        user = User.objects.create_user("bench@parley.example", "bench@parley.example")
    if group is None:
        group = services.group_create(name="Bench", slug="bench", actor=None, owner=user)
    agent = services.thing_create(
        group=group,
        type=Thing.Type.AGENT,
        name="Bench agent",
        actor=None,
        properties={"provider": "simulator", "model": MODEL, "systemPrompt": SYSTEM},
    )
    return group, user, agent


def new_thread(group: Group, user: User, agent: Thing) -> AIThread:
    with group_scope(group):
        thread = chat_services.thread_create(group=group, agent=agent, user=user)
        chat_services.message_create_user(thread=thread, user=user, content=QUESTION)
    return thread


async def platform_turn(group, user, thread) -> tuple[float, float]:
    sink = FirstDelta()
    started = time.perf_counter()
    conversation = ThreadConversation(group=group, thread=thread)
    result = await AgentRun(group=group, conversation=conversation, user=user, sink=sink).execute()
    ended = time.perf_counter()
    assert result.status == "complete", result
    return (sink.at - started) * 1000, (ended - started) * 1000


async def direct_turn(client: AsyncOpenAI) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    stream = await client.chat.completions.create(
        model=MODEL,
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
        temperature=0.7,
        max_tokens=1024,
    )
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
    ended = time.perf_counter()
    return (first - started) * 1000, (ended - started) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, values: list[float]) -> str:
    p50, p99 = statistics.median(values), percentile(values, 0.99)
    return f"{name:<30} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"


async def main(turns: int, warmup: int) -> None:
    group, user, agent = await database_sync_to_async(setup_tenant)()
    with simulator_process() as url:
        settings.PARLEY_PROVIDER_BASE_URLS["simulator"] = url + "/v1"
        client = AsyncOpenAI(api_key="bench", base_url=url + "/v1", max_retries=0)
        threads = [
            await database_sync_to_async(new_thread)(group, user, agent)
            for _ in range(turns + warmup)
        ]
        platform_ttft, platform_total, direct_ttft, direct_total = [], [], [], []
        for index, thread in enumerate(threads):
            p_first, p_total = await platform_turn(group, user, thread)
            d_first, d_total = await direct_turn(client)
            if index >= warmup:
                platform_ttft.append(p_first)
                platform_total.append(p_total)
                direct_ttft.append(d_first)
                direct_total.append(d_total)
    overhead_ttft = [p - d for p, d in zip(platform_ttft, direct_ttft, strict=True)]
    overhead_total = [p - d for p, d in zip(platform_total, direct_total, strict=True)]
    print(f"engine bench: {turns} turns (+{warmup} warm-up), simulator with zero delay, {MODEL}")
    print(report("direct SDK  time to 1st delta", direct_ttft))
    print(report("platform    time to 1st delta", platform_ttft))
    print(report("overhead    time to 1st delta", overhead_ttft))
    print(report("direct SDK  total", direct_total))
    print(report("platform    total", platform_total))
    print(report("overhead    total", overhead_total))
    ratio = statistics.median(platform_ttft) / statistics.median(direct_ttft)
    print(f"ratio platform/direct, time to 1st delta (p50): {ratio:.2f}x")
    verdict = "met" if statistics.median(overhead_ttft) <= 5 else "NOT met"
    print(f"target: platform adds <= 5 ms at p50 to time to first token -> {verdict}")
    verdict = "met" if statistics.median(overhead_total) <= 15 else "NOT met"
    print(f"target: platform adds <= 15 ms at p50 to the whole turn -> {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    asyncio.run(main(args.turns, args.warmup))

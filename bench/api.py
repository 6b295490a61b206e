"""The OpenAI-compatible endpoint over the simulator: its added time to first token, and many
concurrent streams through it.

    make bench                    (all benchmarks)
    python -m config.devservers exec -- .venv/bin/python bench/api.py [--turns 200]
        [--clients 100] [--words 200] [--tps 50] [--ramp 2]

Setup: migrate, one enterprise group with an agent on the simulator and an API token, the
simulator and daphne each in their own process (production settings, rate limits out of
the way), as bench/streams.py starts them.

Phase 1, time to first token: --turns turns, taking turns between the openai SDK (async)
streaming through Parley's /v1/chat/completions, through the floor (a second daphne
serving bench/floor/app.py: the simulator relayed by the same provider wire, with
nothing of Parley) and straight from the simulator, with the same system prompt,
question and model, so all three see the same machine. Added TTFT is the paired
difference with the direct call, reported at p50 and p99 with the ratio; the floor's
own added time shows how much of it the stack under Parley takes by itself.

Phase 2, concurrency: --clients streams through the endpoint at once (spread over --ramp
seconds), each reading its answer to the end. The text each received is compared with
what the simulator sends for that request (fetched once, straight from it): a stream whose
text differs lost (or gained) chunks. Time to first token and total time are reported at
p50 and p99, with the load average before and after.

Exit code 1 when any stream failed or its text differs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402

from api.openai_compat.catalog import model_id  # noqa: E402
from bench.streamslib.accounting import loadavg  # noqa: E402
from bench.streamslib.servers import daphne_process, simulator_process  # noqa: E402
from billing.models import Plan  # noqa: E402
from ontology import services  # noqa: E402
from ontology.models import Group, Thing, User  # noqa: E402
from ontology.tokens import token_create  # noqa: E402

QUESTION = "Summarise our travel policy for the new team."
SYSTEM = "You are a helpful assistant."
# Production settings behind a TLS proxy (plain HTTP would be redirected), limits away.
DAPHNE_ENV = {
    "DJANGO_BEHIND_TLS_PROXY": "1",
    "PARLEY_RATE_API_USER": "1000000/m",
    "PARLEY_RATE_API_GROUP": "1000000/m",
}


def simulator_model(words: int, tps: float) -> str:
    return f"sim-gpt@text;words={words};tps={tps:g};ttft_ms=0"


@dataclass
class Setup:
    secret: str
    ttft_model: str  # model ids on /v1: an unpaced agent for phase 1, a paced one for phase 2
    stream_model: str


def setup(args: argparse.Namespace) -> Setup:
    stamp = f"{int(time.time())}-{os.getpid()}"
    owner = User.objects.create_user(f"api-{stamp}@bench.example", f"api-{stamp}@bench.example")
    group = services.group_create(
        name=f"API bench {stamp}", actor=None, owner=owner, plan=Group.Plan.ENTERPRISE
    )
    # The plan's message rates come from its row (made by the migration): out of the way too.
    Plan.objects.filter(code=Group.Plan.ENTERPRISE).update(
        message_rate_user="1000000/m", message_rate_group="1000000/m"
    )
    ids = []
    for name, model in (
        ("TTFT agent", simulator_model(args.ttft_words, 0)),
        ("Stream agent", simulator_model(args.words, args.tps)),
    ):
        agent = services.thing_create(
            group=group,
            type=Thing.Type.AGENT,
            name=name,
            actor=None,
            properties={"provider": "simulator", "model": model, "systemPrompt": SYSTEM},
        )
        ids.append(model_id(agent_id=agent.pk, name=agent.name))
    _, secret = token_create(group=group, user=owner, name="bench", scopes=["chat"], actor=owner)
    return Setup(secret, *ids)


@dataclass
class Stream:
    ttft_ms: float
    total_ms: float
    text: str
    chunks: int
    error: str = ""


async def read_stream(client: AsyncOpenAI, model: str) -> Stream:
    started = time.perf_counter()
    first, texts = None, []
    try:
        stream = await client.chat.completions.create(
            model=model,
            stream=True,
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.perf_counter()
                texts.append(chunk.choices[0].delta.content)
    except Exception as error:  # a failed stream is counted, not fatal to the bench
        return Stream(0.0, 0.0, "".join(texts), len(texts), repr(error))
    ended = time.perf_counter()
    if first is None:
        return Stream(0.0, 0.0, "", 0, "no text")
    return Stream((first - started) * 1000, (ended - started) * 1000, "".join(texts), len(texts))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<34} (no values)"
    p50, p99 = statistics.median(values), percentile(values, 0.99)
    return f"{name:<34} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms"


async def ttft_phase(
    parley: AsyncOpenAI, direct: AsyncOpenAI, floor: AsyncOpenAI, args, setup: Setup
) -> int:
    """Take turns: the endpoint, the floor (daphne relaying the simulator with nothing of
    Parley, bench/floor/app.py) and the simulator itself; the paired differences are what
    Parley adds, and how much of that the stack under it adds by itself."""
    model = simulator_model(args.ttft_words, 0)
    through, relayed, straight = [], [], []
    failed = 0
    for index in range(args.turns + args.warmup):
        endpoint = await read_stream(parley, setup.ttft_model)
        bare = await read_stream(floor, model)
        alone = await read_stream(direct, model)
        if endpoint.error or bare.error or alone.error:
            failed += 1
            continue
        if index >= args.warmup:
            through.append(endpoint.ttft_ms)
            relayed.append(bare.ttft_ms)
            straight.append(alone.ttft_ms)
    added = [p - d for p, d in zip(through, straight, strict=True)]
    floor_added = [f - d for f, d in zip(relayed, straight, strict=True)]
    print(f"phase 1: {len(through)} turns (+{args.warmup} warm-up), {model}, zero delay")
    print(line("direct SDK   time to 1st token", straight))
    print(line("floor        time to 1st token", relayed))
    print(line("endpoint     time to 1st token", through))
    print(line("floor added  time to 1st token", floor_added))
    print(line("added        time to 1st token", added))
    own = [p - f for p, f in zip(through, relayed, strict=True)]
    print(line("Parley's own time to 1st token", own))
    if straight:
        ratio = statistics.median(through) / statistics.median(straight)
        print(f"ratio endpoint/direct, time to 1st token (p50): {ratio:.2f}x")
    if failed:
        print(f"FAILED turns: {failed}")
    return failed


async def concurrency_phase(parley: AsyncOpenAI, direct: AsyncOpenAI, args, setup: Setup) -> int:
    expected = await read_stream(direct, simulator_model(args.words, 0))
    if expected.error:
        print(f"the simulator did not answer: {expected.error}")
        return 1

    async def one(slot: int) -> Stream:
        await asyncio.sleep(args.ramp * slot / max(1, args.clients))
        return await read_stream(parley, setup.stream_model)

    print(f"phase 2: {args.clients} concurrent streams, {simulator_model(args.words, args.tps)}")
    print(f"load average before: {loadavg()}")
    started = time.perf_counter()
    streams = await asyncio.gather(*(one(slot) for slot in range(args.clients)))
    elapsed = time.perf_counter() - started
    print(f"load average after:  {loadavg()}   ({elapsed:.1f} s)")
    done = [s for s in streams if not s.error]
    errors = [s.error for s in streams if s.error]
    differ = [s for s in done if s.text != expected.text]
    lost_chars = sum(max(0, len(expected.text) - len(s.text)) for s in differ)
    print(line("endpoint     time to 1st token", [s.ttft_ms for s in done]))
    print(line("endpoint     total", [s.total_ms for s in done]))
    chunks = [s.chunks for s in done]
    if chunks:
        print(f"chunks per stream: median {statistics.median(chunks):.0f}")
    print(
        f"streams: {len(done)} complete, {len(errors)} failed, {len(differ)} with text that "
        f"differs from the simulator's ({lost_chars} characters missing)"
    )
    for error in sorted(set(errors))[:5]:
        print(f"  error: {error}")
    return len(errors) + len(differ)


async def run(args, setup: Setup, sim_url: str, port: int, floor_port: int) -> int:
    parley = AsyncOpenAI(
        api_key=setup.secret,
        base_url=f"http://127.0.0.1:{port}/v1",
        default_headers={"X-Forwarded-Proto": "https"},
        max_retries=0,
        timeout=60,
    )
    direct = AsyncOpenAI(api_key="bench", base_url=sim_url + "/v1", max_retries=0, timeout=120)
    floor = AsyncOpenAI(
        api_key="bench", base_url=f"http://127.0.0.1:{floor_port}/v1", max_retries=0, timeout=60
    )
    async with parley, direct, floor:
        bad = await ttft_phase(parley, direct, floor, args, setup)
        bad += await concurrency_phase(parley, direct, args, setup)
    return bad


def main(args: argparse.Namespace) -> int:
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # a line per request otherwise
    print(f"api bench: {args.turns} turns, {args.clients} clients; load average {loadavg()}")
    tenant = setup(args)
    log = Path(tempfile.mkstemp(prefix="daphne-api-", suffix=".log")[1])
    floor_log = Path(tempfile.mkstemp(prefix="daphne-api-floor-", suffix=".log")[1])
    with (
        simulator_process() as (sim_url, _),
        daphne_process(
            sim_url, processes=1, ping_interval=20, ping_timeout=30, log=log, extra_env=DAPHNE_ENV
        ) as (port, _),
        daphne_process(
            sim_url,
            processes=1,
            ping_interval=20,
            ping_timeout=30,
            log=floor_log,
            app="bench.floor.app:application",
        ) as (floor_port, _),
    ):
        bad = asyncio.run(run(args, tenant, sim_url, port, floor_port))
    floor_log.unlink(missing_ok=True)
    if bad:
        print(f"daphne log: {log}")
        return 1
    log.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--ttft-words", type=int, default=40)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--words", type=int, default=200)
    parser.add_argument("--tps", type=float, default=50)
    parser.add_argument("--ramp", type=float, default=2.0)
    arguments = parser.parse_args()
    call_command("migrate", verbosity=0)
    sys.exit(main(arguments))

"""Many concurrent chat streams through daphne: added time to first token, gaps, lost deltas.

    make bench                    (all benchmarks)
    python -m config.devservers exec -- .venv/bin/python bench/streams.py [--clients 200]
        [--words 300] [--tps 50] [--ramp 3] [--procs 1] [--web-processes N] [--no-slow-client]
        [--idle 0] [--idle-batch 50] [--floor]

Setup: migrate, one enterprise group with one user per client (each with its own
thread and a session made with Django's session engine), the provider simulator,
daphne and a Celery worker each in their own process, as `make run` starts them
(daphne gets raised message rate limits and explicit --ping-interval/--ping-timeout;
the worker makes each thread's title after its first answer, and its CPU is reported
as "celery").

Phase 1, baseline: the same number of concurrent streams straight to the
simulator over raw HTTP (aiohttp, SSE parsed by hand), same model and pacing,
same start ramp, from the same client loop(s). Its time to first token and
inter-token gaps are "the simulator's own", network and client cost included.

Phase 2, platform: each client opens /ws/threads/<id>/ (sessionid cookie +
Origin); once every socket is open (their opening times are reported apart) and
a second has passed, each sends `message.send` at its slot of the ramp and reads
frames until `run.completed`. Added TTFT = platform quantile - baseline quantile (p50, p99);
so is the inter-delta gap. Each client checks its run's `seq` are 1..n with no
gap or repeat, and after the phase the text it assembled is compared with the
assistant message stored in the database. The ramp spreads the sends over
--ramp seconds (the answer lasts longer, so all streams overlap); --ramp 0 is
a thundering herd. daphne's RSS is sampled from /proc (and VmHWM read), its
CPU is utime+stime from /proc/<pid>/stat, beside the simulator's, the bench's own and
PostgreSQL's (its server and every backend, ended ones included); the client loop's
own lag is measured too, to tell a slow platform from a saturated bench.

Idle sockets (--idle N, default 0; the issue's "500 idle plus 200 streaming"): before
the streaming clients open, N more WebSockets open, each to a thread of its own of the
same tenant (one more user's session), in batches of --idle-batch (the next batch once
the last is open), and stay open and silent through the platform phase, answering
daphne's pings; they are held by a worker process so they cost the client loop nothing.
Their open times are reported apart; the bench checks in channels_redis' group sets that
each joined its thread's group, and at the end that none was closed. daphne's RSS
(summed over its processes) is read before they open and once they have settled: the
difference over N is its RSS per idle socket, beside the streaming peak. With --floor
as many idle sockets are held against the floor's daphne, so the comparison is fair.

The report ends with issue 16's targets for the platform phase, each PASS or MISS: added
TTFT p99 <= 50 ms, run.started p99 <= 20 ms (send to that frame), WebSocket open p99
<= 150 ms (streaming and idle sockets), 0 lost or duplicated deltas, no idle socket lost,
and with --floor daphne's CPU <= 1.3x the floor's; then the 1-minute load average before
and after, with a warning when it was above 0.5 at the start. The bench raises its
open-files soft limit to the hard one before starting daphne (which inherits it) and
prints both limits.

Phase 3, slow client (skip with --no-slow-client): one client asks an agent
whose answer is long and unpaced, reads a few deltas, then stops reading its
socket (small SO_RCVBUF, transport paused) while every other client runs a
second turn. It reports daphne's RSS growth, the bytes stuck in the kernel
queues, and when daphne drops the connection (the ping timeout); then it
reconnects, sends `stream.resume {after_seq}` and checks that what it had plus
what the resume sent is exactly the stored answer.

Exit code 1 when any delta was lost or duplicated, a text does not match, or an idle
socket did not open, did not join its group or was closed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from bench.streamslib.accounting import (  # noqa: E402
    Sampler,
    load_one_minute,
    loadavg,
    postmaster_pid,
    rss_total,
)
from bench.streamslib.checks import failures  # noqa: E402
from bench.streamslib.cli import parse_args  # noqa: E402
from bench.streamslib.phases import (  # noqa: E402
    Bench,
    baseline_phase,
    floor_phase,
    platform_phase,
    slow_client_phase,
    warm_up,
)
from bench.streamslib.report import (  # noqa: E402
    cpu_ratio,
    print_figures,
    print_platform,
    print_slow_client,
)
from bench.streamslib.servers import (  # noqa: E402
    celery_worker_process,
    daphne_process,
    open_files_limit,
    raise_open_files_limit,
    simulator_process,
)
from bench.streamslib.tenant import setup_tenant  # noqa: E402
from bench.streamslib.workload import agent_model  # noqa: E402


def main(args: argparse.Namespace) -> int:
    load_before = load_one_minute()
    nofile = raise_open_files_limit()  # before any server or worker starts: they inherit it
    idle = f", {args.idle} idle sockets (batches of {args.idle_batch})" if args.idle else ""
    print(
        f"streams bench: {args.clients} clients{idle}, {agent_model(args.words, args.tps)}, "
        f"ramp {args.ramp:g} s, {args.procs} client process(es), {args.web_processes} daphne "
        f"process(es); load average before: {loadavg()}"
    )
    if load_before > 0.5:
        print(f"WARNING: 1-min load average {load_before:.2f} > 0.5 at the start: a busy machine")
    tenant = setup_tenant(
        args.clients,
        idle=args.idle,
        words=args.words,
        tps=args.tps,
        slow_words=args.slow_words,
        warmup=args.warmup,
        rounds=args.rounds if args.floor else 1,
    )
    log = Path(tempfile.mkstemp(prefix="daphne-", suffix=".log")[1])
    with (
        simulator_process() as (sim_url, sim_pid),
        daphne_process(
            sim_url,
            processes=args.web_processes,
            ping_interval=args.ping_interval,
            ping_timeout=args.ping_timeout,
            log=log,
        ) as (port, daphne_pids),
        celery_worker_process(sim_url, log.with_suffix(".worker.log")) as worker_pid,
    ):
        sampler = Sampler(
            {
                "daphne": daphne_pids,
                "simulator": (sim_pid,),
                "bench": (os.getpid(),),
                "celery": (worker_pid,),
            },
            postgres=postmaster_pid(settings.DATABASES["default"]["PORT"]),
        )
        sampler.start()
        report_open_files(nofile, daphne_pids, args)
        bench = Bench(args, tenant, sim_url, sim_pid, port, daphne_pids, sampler)
        warm_up(bench)
        baseline = baseline_phase(bench)
        floor = floor_phase(bench) if args.floor else None
        platform, checks = platform_phase(bench)
        print_platform(baseline, floor, platform, checks)
        sys.stdout.flush()
        ratios, later_bad = later_rounds(bench, floor, platform) if floor else ([], 0)
        slow = slow_client_phase(bench) if args.slow_client else None
        vmhwm = rss_total(daphne_pids, "VmHWM")
        sampler.stop()

    bad = (
        later_bad
        + failures(checks)
        + sum(phase["idle"].failures for phase in (floor, platform) if phase and phase.get("idle"))
    )
    if slow is not None:
        print_slow_client(slow, args)
        bad += slow.failures
    print_figures(
        clients=args.clients,
        baseline=baseline,
        floor=floor,
        platform=platform,
        checks=checks,
        slow=slow,
        vmhwm=vmhwm,
        bad=bad,
        load_before=load_before,
        cpu_ratios=ratios,
    )
    if bad:
        print(f"daphne log: {log}")
        return 1
    log.unlink(missing_ok=True)
    return 0


def later_rounds(bench: Bench, floor: dict, platform: dict) -> tuple[list[float], int]:
    """--rounds: more floor and platform phases, alternated, the platform's on fresh threads;
    daphne's CPU ratio of each round (the first round's first), and the later rounds' failures
    (lost or duplicated deltas, texts not stored, idle sockets lost)."""
    ratios, bad = [cpu_ratio(floor, platform)], 0
    for round_ in range(1, bench.args.rounds):
        later_floor = floor_phase(bench, round_)
        later_platform, checks = platform_phase(bench, round_)
        bad += failures(checks) + sum(
            phase["idle"].failures for phase in (later_floor, later_platform) if phase.get("idle")
        )
        ratios.append(cpu_ratio(later_floor, later_platform))
        print(
            f"round {round_ + 1}: daphne CPU {later_platform['phase']['cpu']['daphne']:.1f} s / "
            f"floor {later_floor['phase']['cpu']['daphne']:.1f} s = {ratios[-1]:.2f}x; "
            f"lost {checks['lost']}, duplicated {checks['duplicated']}"
        )
        sys.stdout.flush()
    return ratios, bad


def report_open_files(bench_limit: int, daphne_pids: tuple[int, ...], args) -> None:
    """The open-files limits of the bench and daphne, against the sockets this run holds
    (each daphne socket also has its run's connection to the simulator)."""
    needed = 2 * (args.clients + args.idle) + 200
    daphne = min(open_files_limit(pid) for pid in daphne_pids)
    print(f"open files limit: bench {bench_limit}, daphne {daphne} (this run needs ~{needed})")
    for name, limit in (("bench", bench_limit), ("daphne", daphne)):
        if 0 <= limit < needed:
            print(f"WARNING: {name}'s open files limit {limit} < {needed}: sockets will fail")


if __name__ == "__main__":
    arguments = parse_args(__doc__.splitlines()[0])
    call_command("migrate", verbosity=0)
    sys.exit(main(arguments))

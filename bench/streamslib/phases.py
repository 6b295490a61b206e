"""The phases: warm-up, the direct baseline, the floor, the platform and the slow client."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from django.db import connections

from bench.streamslib.accounting import Sampler
from bench.streamslib.checks import check_streams, failures, stored_answers
from bench.streamslib.clients import Job, run_clients, run_job_in_process
from bench.streamslib.idle import idle_sockets
from bench.streamslib.servers import daphne_process, profiler
from bench.streamslib.slow_client import slow_client
from bench.streamslib.summary import summarize
from bench.streamslib.tenant import Tenant
from bench.streamslib.workload import agent_model

Clients = list[tuple[int, str, str]]


@dataclass
class Bench:
    """What every phase runs against: the options, the tenant, the servers and their sampler."""

    args: argparse.Namespace
    tenant: Tenant
    sim_url: str
    sim_pid: int
    port: int
    daphne_pids: tuple[int, ...]
    sampler: Sampler

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def clients(self) -> Clients:
        return self.round_clients(0)

    def round_clients(self, round_: int) -> Clients:
        """The clients of a round (--rounds): the same people, on threads of that round."""
        threads = self.tenant.threads if round_ == 0 else self.tenant.later_threads[round_ - 1]
        pairs = zip(threads, self.tenant.cookies, strict=True)
        return [(i, str(thread), cookie) for i, (thread, cookie) in enumerate(pairs)]

    @property
    def idle_targets(self) -> list[tuple[str, str]]:
        """(thread id, session cookie) of each idle socket."""
        return [(str(thread), self.tenant.idle_cookie) for thread in self.tenant.idle_threads]

    def job(
        self, kind: str, url: str, clients: Clients, ramp: float, round_: int, origin: str = ""
    ) -> Job:
        """Clients that start a second from now, spread over `ramp` seconds."""
        return Job(
            kind=kind,
            url=url,
            start_at=time.perf_counter() + 1.0,
            ramp=ramp,
            clients=clients,
            origin=origin or self.origin,
            model=agent_model(self.args.words, self.args.tps),
            total_clients=len(clients),
            round=round_,
        )


@dataclass
class SlowClientPhase:
    client: dict  # what slow_client saw, and "stored": the stored (content, status)
    second_turn: dict  # the other clients' second turn, summarized
    checks: dict
    phase: dict

    @property
    def resumed_ok(self) -> bool:
        content, _ = self.client["stored"]
        return self.client["text"] == content and self.client.get("end") == "run.completed"

    @property
    def failures(self) -> int:
        bad = failures(self.checks)
        if "error" in self.client:
            return bad + 1
        return bad + (not self.resumed_ok) + self.client["lost"] + self.client["duplicated"]


def warm_up(bench: Bench) -> None:
    """Imports, pools, first connections: none of it in a measured phase."""
    tenant = bench.tenant
    warm = [(i, str(t), tenant.slow_cookie) for i, t in enumerate(tenant.warmup_threads)]
    run_clients(bench.job("ws", bench.ws_url, warm, 0.5, 0), 1)


def baseline_phase(bench: Bench) -> dict:
    args = bench.args
    phase = bench.sampler.phase()
    clients = [(i, "", "") for i in range(args.clients)]
    direct = run_clients(bench.job("direct", bench.sim_url, clients, args.ramp, 1), args.procs)
    return summarize("baseline: direct to the simulator", *direct, phase.end())


def floor_phase(bench: Bench, round_: int = 0) -> dict:
    """The same clients against daphne serving bench/floor/app.py: daphne, Channels and the
    SDK wire with none of Parley's work, in its own daphne processes (same count); profiled
    (--py-spy-floor) in the first round only."""
    args, clients = bench.args, bench.clients
    log = Path(tempfile.mkstemp(prefix="daphne-floor-", suffix=".log")[1])
    model = {"PARLEY_FLOOR_MODEL": agent_model(args.words, args.tps)}
    with daphne_process(
        bench.sim_url,
        processes=args.web_processes,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        log=log,
        app="bench.floor.app:application",
        extra_env=model,
    ) as (port, pids):
        url, origin = f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"
        sampler = Sampler({"daphne": pids, "simulator": (bench.sim_pid,), "bench": (os.getpid(),)})
        sampler.start()
        run_clients(bench.job("ws", url, clients[: args.warmup], 0.5, 0, origin), 1)
        with idle_sockets(
            url=url,
            origin=origin,
            targets=bench.idle_targets,
            batch=args.idle_batch,
            daphne_pids=pids,
            parley=False,
        ) as idle:
            phase = sampler.phase()
            if idle:
                idle.streams_start()
            with profiler(pids[0], args.py_spy_floor if round_ == 0 else None):
                job = bench.job("ws", url, clients, args.ramp, 1, origin)
                streams, lags = run_clients(job, args.procs)
            accounting = phase.end()
            idle_result = idle.check() if idle else None
        summary = summarize("floor: daphne + Channels + SDK wire only", streams, lags, accounting)
        summary["idle"] = idle_result
        sampler.stop()
    bad = [s.index for s in streams if s.error or s.seqs != list(range(1, len(s.seqs) + 1))]
    summary["errors"] += [f"client {index}: seq gap or error" for index in bad]
    log.unlink(missing_ok=True)
    return summary


def platform_phase(bench: Bench, round_: int = 0) -> tuple[dict, dict]:
    """Every client's turn through daphne, with the idle sockets open throughout; its
    summary (the idle sockets' figures under "idle"), and its streams' checks. `round_`:
    which round's threads (--rounds)."""
    args = bench.args
    with idle_sockets(
        url=bench.ws_url,
        origin=bench.origin,
        targets=bench.idle_targets,
        batch=args.idle_batch,
        daphne_pids=bench.daphne_pids,
        parley=True,
    ) as idle:
        phase = bench.sampler.phase()
        if idle:
            idle.streams_start()
        with profiler(bench.daphne_pids[0], args.py_spy if round_ == 0 else None):
            job = bench.job("ws", bench.ws_url, bench.round_clients(round_), args.ramp, 1)
            streams, lags = run_clients(job, args.procs)
        accounting = phase.end()
        idle_result = idle.check() if idle else None
    platform = summarize("platform: WebSocket through daphne", streams, lags, accounting)
    platform["idle"] = idle_result
    stored = stored_answers(bench.tenant.group, [s.message_id for s in streams if s.message_id])
    return platform, check_streams(streams, stored)


def slow_client_phase(bench: Bench) -> SlowClientPhase:
    """The slow client stalls while every other client runs a second turn in a worker."""
    args, tenant = bench.args, bench.tenant
    phase = bench.sampler.phase()
    deadline = time.perf_counter() + args.ping_interval + args.ping_timeout + 20
    with multiprocessing.get_context("fork").Pool(1) as pool:
        connections.close_all()
        second_job = bench.job("ws", bench.ws_url, bench.clients, args.ramp, 2)
        second = pool.apply_async(run_job_in_process, (second_job,))
        try:
            client = asyncio.run(
                slow_client(
                    bench.port,
                    tenant.slow_thread,
                    tenant.slow_cookie,
                    bench.origin,
                    bench.sampler,
                    deadline,
                )
            )
        except Exception as error:  # reported, and counted as a failure
            client = {"error": repr(error), "message_id": ""}
        second_streams, second_lags = second.get()
    accounting = phase.end()
    stored = stored_answers(
        tenant.group,
        [s.message_id for s in second_streams if s.message_id] + [client["message_id"]],
    )
    second_turn = summarize(
        "slow-client phase: other clients' 2nd turn", second_streams, second_lags, accounting
    )
    checks = check_streams(second_streams, stored)
    client["stored"] = stored.get(client["message_id"], ("", "missing"))
    return SlowClientPhase(client, second_turn, checks, accounting)

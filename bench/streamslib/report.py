"""The printed report: each phase's figures, the checks, and the table of figures."""

from __future__ import annotations

import argparse
import statistics

from bench.streamslib.accounting import load_one_minute
from bench.streamslib.idle import IdleResult
from bench.streamslib.phases import SlowClientPhase
from bench.streamslib.slow_client import SLOW_DELTAS_READ
from bench.streamslib.summary import percentile


def line(label: str, values: list[float], unit: str = "ms") -> str:
    if not values:
        return f"  {label:<34} (none)"
    return (
        f"  {label:<34} p50 {statistics.median(values):8.1f}  p99 {percentile(values, 0.99):8.1f}"
        f"  max {max(values):8.1f} {unit}"
    )


def print_phase(summary: dict) -> None:
    peak, full = summary["concurrency"]
    print(
        f"{summary['name']}: {len(summary['ttft'])} streams, {summary['deltas']} deltas, "
        f"peak {peak} in flight, all in flight for {full:.1f} s, errors {len(summary['errors'])}"
    )
    print(line("time to first delta", summary["ttft"]))
    if summary["started"]:
        print(line("time to run.started", summary["started"]))
        thirds = " / ".join(
            f"{statistics.median(third):.1f}, {percentile(third, 0.99):.1f}"
            for third in summary["started_thirds"]
        )
        print(f"  {'  by third of the ramp (p50, p99)':<34} {thirds} ms")
    if summary["connect"]:
        print(line("WebSocket open (before the ramp)", summary["connect"]))
    print(line("inter-delta gap", summary["gaps"]))
    print(line("whole stream", summary["total"], "s"))
    print(line("client loop lag (10 ms timer)", summary["lag"]))
    phase = summary["phase"]
    if phase:
        cpu = phase["cpu"]
        named = [name for name in ("simulator", "bench", "postgres", "celery") if name in cpu]
        others = "; ".join(f"{name} {100 * cpu[name] / phase['wall']:.0f}%" for name in named)
        print(
            f"  daphne CPU {cpu['daphne']:.1f} s = {100 * cpu['daphne'] / phase['wall']:.0f}% "
            f"of a core ({phase['daphne_sys']:.1f} s system); {others}; machine busy "
            f"{100 * phase['machine']:.0f}% of 2 cores over {phase['wall']:.1f} s"
        )
        print(
            f"  daphne RSS {phase['rss_start'] / 1024:.0f} -> peak "
            f"{phase['rss_peak'] / 1024:.0f} MiB (end {phase['rss_end'] / 1024:.0f} MiB)"
        )
    if summary.get("idle"):
        print_idle(summary["idle"], phase)
    for error in sorted(set(summary["errors"]))[:5]:
        print(f"  error: {error}")


def print_idle(idle: IdleResult, phase: dict | None) -> None:
    joined = "" if idle.joined is None else f", {idle.joined} joined their threads' groups"
    print(
        f"  idle sockets: {len(idle.opened)}/{idle.sockets} opened in batches of {idle.batch} "
        f"over {idle.open_wall:.1f} s{joined}"
    )
    print(line(f"idle WebSocket open (batches of {idle.batch})", idle.opened))
    peak = f", streaming peak {phase['rss_peak'] / 1024:.0f} MiB" if phase else ""
    print(
        f"  daphne RSS before the idle sockets {idle.rss_before / 1024:.0f} MiB, with them "
        f"{idle.rss_after / 1024:.0f} MiB ({idle.rss_per_socket:+.1f} KiB per idle socket){peak}"
    )
    print(
        f"  idle sockets closed by the end: {len(idle.closed)}; frames they received "
        f"{idle.frames}; their worker's CPU while the streams ran {idle.holder_cpu:.2f} s"
    )
    for problem in (idle.open_errors + idle.closed)[:5]:
        print(f"  ! {problem}")


def print_problems(checks: dict) -> None:
    for problem in checks["problems"][:10]:
        print(f"  ! {problem}")


def print_platform(baseline: dict, floor: dict | None, platform: dict, checks: dict) -> None:
    print()
    print_phase(baseline)
    if floor:
        print_phase(floor)
    print_phase(platform)
    print(
        f"  deltas lost {checks['lost']}, duplicated {checks['duplicated']}, texts not "
        f"matching the stored answer {checks['mismatched']}, failed streams {checks['failed']}"
    )
    print_problems(checks)


def print_slow_client(slow: SlowClientPhase, args: argparse.Namespace) -> None:
    checks, client = slow.checks, slow.client
    print()
    print_phase(slow.second_turn)
    print(
        f"  deltas lost {checks['lost']}, duplicated {checks['duplicated']}, "
        f"texts not matching {checks['mismatched']}, failed {checks['failed']}"
    )
    print_problems(checks)
    if "error" in client:
        print(f"slow client failed: {client['error']}")
        return
    content, status = client["stored"]
    peak_rss = max((s[1] for s in client["samples"]), default=0)
    print(
        f"slow client ({args.slow_words} words unpaced, stops reading after "
        f"{SLOW_DELTAS_READ} deltas; daphne --ping-interval {args.ping_interval} "
        f"--ping-timeout {args.ping_timeout}):"
    )
    if client["disconnected_after"] is None:
        print("  daphne did NOT drop the connection before the deadline")
    else:
        print(
            f"  daphne dropped it {client['disconnected_after']:.1f} s after the client "
            f"stopped reading ({client['close_state']})"
        )
    print(
        f"  most bytes queued in daphne's kernel send queue: "
        f"{client.get('max_server_queue', 0):,}; answer stored: {len(content):,} chars ({status})"
    )
    print(
        f"  daphne RSS at phase start {slow.phase['rss_start'] / 1024:.0f} MiB, peak while "
        f"stalled {peak_rss / 1024:.0f} MiB, at the drop "
        f"{client['rss_at_disconnect'] / 1024:.0f} MiB, "
        f"end {slow.phase['rss_end'] / 1024:.0f} MiB"
    )
    print(
        f"  resume after seq {client['had_seq']}: {client['resumed_deltas']} deltas, "
        f"lost {client['lost']}, duplicated {client['duplicated']}, text equals stored: "
        f"{'yes' if slow.resumed_ok else 'NO'}"
    )


def added(platform: list[float], baseline: list[float]) -> list[float]:
    """p50 and p99 of `platform` beyond those of `baseline`."""
    return [percentile(platform, q) - percentile(baseline, q) for q in (0.5, 0.99)]


def cpu_ratio(floor: dict, platform: dict) -> float:
    """daphne's CPU in a platform phase over the floor's in its round."""
    return platform["phase"]["cpu"]["daphne"] / max(floor["phase"]["cpu"]["daphne"], 1e-9)


def print_figures(
    *,
    clients: int,
    baseline: dict,
    floor: dict | None,
    platform: dict,
    checks: dict,
    slow: SlowClientPhase | None,
    vmhwm: int,
    bad: int,
    load_before: float,
    cpu_ratios: list[float] | None = None,
) -> None:
    """The figures and issue 16's targets. `cpu_ratios`: daphne's CPU ratio of each round
    (--rounds); with more than one, the target is judged on their median."""
    added_ttft = added(platform["ttft"], baseline["ttft"])
    added_gap = added(platform["gaps"], baseline["gaps"])
    gap_p99 = percentile(platform["gaps"], 0.99), percentile(baseline["gaps"], 0.99)
    cpu = platform["phase"]["cpu"]["daphne"]
    wall = platform["phase"]["wall"]
    rows = [
        ("streams completed", f"{clients - checks['failed']}/{clients}"),
        ("added TTFT p50 (platform - direct)", f"{added_ttft[0]:.1f} ms"),
        ("added TTFT p99 (platform - direct)", f"{added_ttft[1]:.1f} ms"),
        ("inter-delta gap p99 platform / direct", f"{gap_p99[0]:.1f} / {gap_p99[1]:.1f} ms"),
        ("inter-delta gap p99 beyond the simulator's", f"{added_gap[1]:.1f} ms"),
        (
            "deltas lost / duplicated / bad texts",
            f"{checks['lost']} / {checks['duplicated']} / {checks['mismatched']}",
        ),
        ("daphne CPU (platform phase)", f"{cpu:.1f} s, {100 * cpu / wall:.0f}% of a core"),
        ("daphne RSS peak (platform phase)", f"{platform['phase']['rss_peak'] / 1024:.0f} MiB"),
        ("daphne VmHWM (whole run)", f"{vmhwm / 1024:.0f} MiB"),
        ("client loop lag p99 (platform phase)", f"{percentile(platform['lag'], 0.99):.1f} ms"),
    ]
    idle = platform.get("idle")
    if idle:
        rows += [
            ("idle sockets open at the end", f"{idle.open_at_end}/{idle.sockets}"),
            ("daphne RSS per idle socket", f"{idle.rss_per_socket:.1f} KiB"),
        ]
    if slow is not None and "error" not in slow.client:
        dropped = slow.client["disconnected_after"]
        rows += [
            ("slow client dropped after", "never" if dropped is None else f"{dropped:.1f} s"),
            ("slow client resume complete", "yes" if slow.resumed_ok else "NO"),
        ]
    if floor:
        floor_ttft = added(floor["ttft"], baseline["ttft"])
        floor_cpu = floor["phase"]["cpu"]["daphne"]
        rows += [
            ("floor: added TTFT p50 / p99", f"{floor_ttft[0]:.1f} / {floor_ttft[1]:.1f} ms"),
            ("floor: daphne CPU; platform / floor", f"{floor_cpu:.1f} s; {cpu / floor_cpu:.2f}x"),
        ]
        if floor.get("idle"):
            per_socket = floor["idle"].rss_per_socket
            rows.append(("floor: daphne RSS per idle socket", f"{per_socket:.1f} KiB"))
    print()
    print(f"{'figure':<44} {'value':>12}")
    for label, value in rows:
        print(f"{label:<44} {value:>12}")
    print_targets(clients, added_ttft[1], platform, floor, checks, load_before, cpu_ratios)
    if bad:
        print(f"FAILED: {bad} lost, duplicated, mismatched or failed stream(s) or idle socket(s)")


def target(label: str, value: float, limit: float, unit: str) -> str:
    verdict = "PASS" if value <= limit else "MISS"  # a NaN (nothing measured) is a MISS
    return verdict_line(label, f"{value:.1f} {unit}", f"<= {limit:g} {unit}", verdict)


def verdict_line(label: str, value: str, wanted: str, verdict: str) -> str:
    return f"  {label:<30} {value:>12}  {wanted:<10} {verdict}"


def print_targets(
    clients: int,
    added_ttft_p99: float,
    platform: dict,
    floor: dict | None,
    checks: dict,
    load_before: float,
    cpu_ratios: list[float] | None = None,
) -> None:
    """The platform phase against issue 16's targets for 200 streams (with 500 idle)."""
    idle = platform.get("idle")
    shape = f"{clients} streams" + (f" + {idle.sockets} idle sockets" if idle else "")
    print()
    print(f"targets (issue 16), platform phase, {shape}:")
    print(target("added TTFT p99", added_ttft_p99, 50, "ms"))
    print(target("run.started p99", percentile(platform["started"], 0.99), 20, "ms"))
    print(target("WebSocket open p99 (streams)", percentile(platform["connect"], 0.99), 150, "ms"))
    if idle:
        print(target("WebSocket open p99 (idle)", percentile(idle.opened, 0.99), 150, "ms"))
    lost = checks["lost"] + checks["duplicated"]
    print(
        verdict_line(
            "lost / duplicated deltas",
            f"{checks['lost']} / {checks['duplicated']}",
            "0",
            "PASS" if lost == 0 else "MISS",
        )
    )
    if idle:
        verdict = "PASS" if idle.failures == 0 else "MISS"
        print(verdict_line("idle sockets failed or closed", str(idle.failures), "0", verdict))
    if floor and cpu_ratios and len(cpu_ratios) > 1:
        rounds = ", ".join(f"{ratio:.2f}" for ratio in cpu_ratios)
        print(f"  daphne CPU / floor's per round: {rounds}")
        label = f"daphne CPU / floor's, median of {len(cpu_ratios)}"
        print(target(label, statistics.median(cpu_ratios), 1.3, "x"))
    elif floor:
        print(target("daphne CPU / floor's", cpu_ratio(floor, platform), 1.3, "x"))
    else:
        print(verdict_line("daphne CPU / floor's", "no --floor", "<= 1.3 x", "-"))
    after = load_one_minute()
    print(f"  load average (1 min): before {load_before:.2f}, after {after:.2f}")
    if load_before > 0.5:
        print(
            f"  WARNING: the machine was busy when the run started (1-min load {load_before:.2f}"
            " > 0.5): the figures may be someone else's"
        )

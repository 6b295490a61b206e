"""The command line of bench/streams.py."""

from __future__ import annotations

import argparse

from config.devservers import web_processes


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--words", type=int, default=300, help="answer length (~1.2 tokens/word)")
    parser.add_argument("--tps", type=float, default=50, help="simulator tokens per second")
    parser.add_argument("--ramp", type=float, default=3.0, help="seconds over which sends start")
    parser.add_argument("--procs", type=int, default=1, help="client processes (one loop each)")
    parser.add_argument(
        "--web-processes",
        type=int,
        default=web_processes(),
        help="daphne processes on one port, as `make run` starts (PARLEY_WEB_PROCESSES, "
        "else one per core)",
    )
    parser.add_argument(
        "--idle",
        type=int,
        default=0,
        help="authenticated WebSockets, each to a thread of its own, opened before the streams "
        "and silent through the platform phase (and as many against the floor)",
    )
    parser.add_argument(
        "--idle-batch", type=int, default=50, help="idle sockets opened at once (default: 50)"
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--slow-words", type=int, default=12_000)
    parser.add_argument("--ping-interval", type=int, default=20, help="daphne's default: 20")
    parser.add_argument("--ping-timeout", type=int, default=30, help="daphne's default: 30")
    parser.add_argument(
        "--py-spy",
        metavar="FILE",
        help="profile daphne in the platform phase (.svg flame graph, .txt collapsed stacks)",
    )
    parser.add_argument("--py-spy-floor", metavar="FILE", help="the same, for the floor's daphne")
    parser.add_argument("--no-slow-client", dest="slow_client", action="store_false")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run the clients against bench/floor/app.py (daphne, Channels and the SDK "
        "wire alone), between the baseline and the platform",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="with --floor: this many floor and platform phases, alternated (the platform's on "
        "fresh threads each round), for daphne's CPU ratio per round and their median, steadier "
        "than one pair's; the other figures are the first round's",
    )
    return parser.parse_args()

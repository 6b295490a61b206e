"""One phase's figures from its streams: quantiles, gaps, concurrency."""

from __future__ import annotations

from bench.streamslib.clients import Stream


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def peak_concurrency(streams: list[Stream]) -> tuple[int, float]:
    """Most streams in flight at once, and for how long all of them were."""
    edges = sorted(
        [(s.sent_at, 1) for s in streams if s.sent_at]
        + [(s.done_at, -1) for s in streams if s.sent_at]
    )
    live = peak = 0
    full_since, full_for = None, 0.0
    for at, step in edges:
        live += step
        peak = max(peak, live)
        if live == len(streams) and full_since is None:
            full_since = at
        elif live < len(streams) and full_since is not None:
            full_for += at - full_since
            full_since = None
    return peak, full_for


def by_thirds(streams: list[Stream]) -> list[list[float]]:
    """Each stream's time to run.started (ms), split by the third of the send ramp its turn
    was sent in: a start that waits behind the streams already running shows in the later
    thirds, a one-time cost in whichever third it fell."""
    sent = sorted((s for s in streams if s.to_started is not None), key=lambda s: s.sent_at)
    if not sent:
        return []  # the direct baseline has no run.started
    size = -(-len(sent) // 3)
    return [[s.to_started * 1000 for s in sent[i : i + size]] for i in range(0, len(sent), size)]


def summarize(name: str, streams: list[Stream], lags: list[float], phase: dict | None) -> dict:
    ok = [s for s in streams if s.ttft is not None]
    gaps = [g for s in ok for g in s.gaps]
    return {
        "name": name,
        "ttft": [s.ttft * 1000 for s in ok],
        "started": [s.to_started * 1000 for s in ok if s.to_started is not None],
        "started_thirds": by_thirds(ok),
        "connect": [s.connect * 1000 for s in ok if s.connect is not None],
        "gaps": [g * 1000 for g in gaps],
        "total": [s.total for s in ok],
        "deltas": sum(s.deltas for s in streams),
        "errors": [s.error for s in streams if s.error],
        "lag": [lag * 1000 for lag in lags],
        "concurrency": peak_concurrency(streams),
        "phase": phase,
    }

"""CPU, RSS and machine load read from /proc, so each phase reports what it cost."""

from __future__ import annotations

import contextlib
import os
import threading
import time

HZ = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pids: tuple[int, ...]) -> float:
    return sum(sum(cpu_split(pid)) for pid in pids)


def system_seconds(pids: tuple[int, ...]) -> float:
    return sum(cpu_split(pid)[1] for pid in pids)


def rss_total(pids: tuple[int, ...], key: str = "VmRSS") -> int:
    return sum(rss_kib(pid, key) for pid in pids)


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU seconds (utime, stime: fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / HZ, int(fields[12]) / HZ


def postmaster_pid(port: int | str) -> int | None:
    """The PostgreSQL server listening on `port` (its command line names the port)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                args = cmdline.read().split(b"\0")
                if args[0].endswith(b"/postgres") and f"port={port}".encode() in args:
                    return int(entry)
    return None


def server_cpu_seconds(root: int) -> float:
    """CPU of a server and all its processes, those that ended included (the root's cutime and
    cstime hold its reaped children's): PostgreSQL starts and ends a process per connection."""
    with open(f"/proc/{root}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    total = sum(int(value) for value in fields[11:15]) / HZ
    with open(f"/proc/{root}/task/{root}/children") as children:
        for child in children.read().split():
            with contextlib.suppress(OSError):
                total += sum(cpu_split(int(child)))
    return total


def machine_busy() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def loadavg() -> str:
    with open("/proc/loadavg") as load:
        return " ".join(load.read().split()[:3])


def load_one_minute() -> float:
    return float(loadavg().split()[0])


class Sampler:
    """Samples daphne's RSS every 50 ms in a thread; a phase reads its peak and CPU."""

    def __init__(self, pids: dict[str, tuple[int, ...]], postgres: int | None = None) -> None:
        self.pids = pids
        self.postgres = postgres
        self.peak = 0
        self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(OSError):
                self.last = rss_total(self.pids["daphne"])
                self.peak = max(self.peak, self.last)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def phase(self) -> Phase:
        self.peak = rss_total(self.pids["daphne"])
        return Phase(self)


class Phase:
    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.rss_start = sampler.peak
        self.cpu_start = {name: cpu_seconds(pid) for name, pid in sampler.pids.items()}
        self.postgres_start = server_cpu_seconds(sampler.postgres) if sampler.postgres else 0.0
        self.daphne_sys_start = system_seconds(sampler.pids["daphne"])
        self.busy_start = machine_busy()
        self.started = time.perf_counter()

    def end(self) -> dict:
        wall = time.perf_counter() - self.started
        cpu = {
            name: cpu_seconds(pid) - self.cpu_start[name] for name, pid in self.sampler.pids.items()
        }
        if self.sampler.postgres:
            cpu["postgres"] = server_cpu_seconds(self.sampler.postgres) - self.postgres_start
        busy, total = machine_busy()
        machine = (busy - self.busy_start[0]) / max(1, total - self.busy_start[1])
        return {
            "wall": wall,
            "cpu": cpu,
            "machine": machine,
            "rss_start": self.rss_start,
            "daphne_sys": system_seconds(self.sampler.pids["daphne"]) - self.daphne_sys_start,
            "rss_peak": self.sampler.peak,
            "rss_end": rss_total(self.sampler.pids["daphne"]),
        }

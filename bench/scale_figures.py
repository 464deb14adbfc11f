"""`make bench-scale`'s figures of one scenario: time, requests, rates and CPU."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.fake_analytiks import FakeAnalytiks

if TYPE_CHECKING:
    from bench.scale_plan import Scenario


def _proc_cpu_s(pid: int) -> float:
    """user + sys seconds of a process (and its reaped children) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def _machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values) - idle) / ticks, sum(values) / ticks


def _self_cpu_s() -> float:
    usage = os.times()
    return usage.user + usage.system


def max_rate(arrivals: list[float], window_s: float = 5.0) -> float:
    """The most requests any `window_s` seconds held, per second (exact, sliding)."""
    times = sorted(arrivals)
    best, end = 0, 0
    for start, t0 in enumerate(times):
        while end < len(times) and times[end] < t0 + window_s:
            end += 1
        best = max(best, end - start)
    return best / window_s


def cpu_snapshot(moto_pid: int) -> dict[str, float]:
    """CPU seconds so far: moto's, this process's (the fake API's), the machine's."""
    busy, total = _machine_cpu_s()
    return {
        "moto": _proc_cpu_s(moto_pid),
        "self": _self_cpu_s(),
        "machine_busy": busy,
        "machine_total": total,
        "load1": os.getloadavg()[0],
    }


# -- figures --------------------------------------------------------------------


def figures(  # noqa: PLR0917 -- one scenario's measurements, each named
    api: FakeAnalytiks,
    sc: Scenario,
    t0: float,
    end: float,
    started: Any,
    finished: list[Any],
    before: dict[str, float],
    after: dict[str, float],
    work: Path,
) -> dict[str, Any]:
    w = sc.workload
    stats = api.stats
    arrivals = [t for t in api.arrivals() if t >= t0]
    invocations = [i for f in [started, *finished] for i in f.report["invocations"]]
    calls: Counter[str] = Counter()
    poller: Counter[str] = Counter()
    for f in [started, *finished]:
        calls.update(f.report["calls"])
        poller.update(f.report["poller"])
    requests = stats.data_calls
    throttled = sum(n for (p, s), n in stats.path_responses.items() if s == 429)
    exporter_cpu = started.cpu_s + sum(f.cpu_s for f in finished)
    ours = exporter_cpu + (after["moto"] - before["moto"]) + (after["self"] - before["self"])
    machine_busy = after["machine_busy"] - before["machine_busy"]
    wall = end - t0
    return {
        "scenario": sc.name,
        "workload": w.name,
        "workers": sc.workers,
        "latency_s": sc.latency_s,
        "rate_limit": sc.rate_limit,
        "sliding": sc.sliding,
        "pages": w.pages,
        "brand_days": w.brand_days,
        "wall_s": wall,
        "limit_s": sc.limit_s,
        "wall_vs_limit": wall / sc.limit_s if sc.limit_s else None,
        "requests": requests,
        "pages_served": stats.pages_served,
        "throttled": throttled,
        "throttled_share": throttled / requests if requests else 0.0,
        "max_rate_5s": max_rate(arrivals),
        "mean_rate": len(arrivals) / wall if wall else 0.0,
        "invocations": len(invocations),
        "invocation_wall_s": sum(i["wall_s"] for i in invocations),
        "invocation_cpu_s": sum(i["cpu_s"] for i in invocations),
        "crashed": sum(1 for i in invocations if not i["ok"]),
        "redelivered": poller.get("Redelivered", 0),
        "aws_calls": dict(sorted(calls.items())),
        "poller_calls": dict(sorted(poller.items())),
        "log_bytes": sum(p.stat().st_size for p in work.glob("*.log")),
        "cpu": {
            "exporter_s": exporter_cpu,
            "moto_s": after["moto"] - before["moto"],
            "fake_api_and_bench_s": after["self"] - before["self"],
            "ours_s": ours,
            "machine_busy_s": machine_busy,
            "others_s": max(0.0, machine_busy - ours),
            "cores": os.cpu_count(),
            "load1_before": before["load1"],
            "load1_after": after["load1"],
        },
        "fake_cache": {"hits": stats.cache_hits, "misses": stats.cache_misses},
    }

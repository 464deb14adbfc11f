"""A brand-year's start and commit, side by side and one call after another (issue 27).

    python -m bench.scale_year                      # 365 days at 8 pollers
    python -m bench.scale_year --days 60 --out DIR  # a smoke

One brand, one window a day, 8 pollers, on `bench.scale`'s stack (moto server,
fake API, a process per Lambda container). Each mode runs the same backfill in
an emptied bucket: "start" is from the starting invocation to the moment every
window is queued (plan, 365 sends, 365 "enqueued" markers), "commit" the
finisher's `commit_run` (copies, settling every day, manifest). The sequential
mode sets `SCALE_SEQUENTIAL=1`, which only the bench's pollers read
(`local.pollers`): every group of store calls then runs one call after another.
The brand has 50 locations (one page a day): neither figure depends on the rows,
and a year of pages then costs seconds, not minutes. Every run is checked
exactly-once as `bench.scale` checks its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/scale_year.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, machine, source_state, stop_on_signals
from bench.procs import Processes
from bench.scale import Bench
from bench.scale_plan import Scenario, Workload

BRAND = 9301
MODES = {"parallel": {}, "sequential": {"SCALE_SEQUENTIAL": "1"}}


def measure(days: int, workers: int, locations: int, latency_s: float) -> dict[str, Any]:
    year = Workload("year", (BRAND,), locations, date(2023, 1, 1), days, "on-demand")
    sc = Scenario(year, workers, latency_s)
    out: dict[str, Any] = {"days": days, "workers": workers, "locations": locations}
    with tempfile.TemporaryDirectory(prefix="bench-year-") as tmp:
        procs = Processes(Path(tmp))
        bench = Bench(procs, Path(tmp), smoke=True)
        try:
            bench.start({BRAND: locations})
            bench.warm(year)
            for mode, env in MODES.items():
                figures = bench.run(sc, f"-{mode}", **env)
                out[mode] = {
                    "start_s": round(figures["fanned_out_s"], 3),
                    # More than one when a finisher lost its lease (then the last wins).
                    "commit_s": [round(s, 3) for s in figures["commit_s"]],
                    "wall_s": round(figures["wall_s"], 3),
                    "exactly_once": figures["checks"]["ok"],
                }
                print(f"{mode}: {json.dumps(out[mode])}", flush=True)
        finally:
            if getattr(bench, "api", None) is not None:
                bench.api.stop()
            procs.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_year", description=__doc__)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--locations", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.08, help="seconds per API answer")
    parser.add_argument("--out", type=Path, help="write scale_year.json here")
    args = parser.parse_args(argv)
    stop_on_signals()
    results = {
        "machine": machine(),
        "source": source_state(),
        **measure(args.days, args.workers, args.locations, args.latency),
    }
    path = (args.out or ROOT / "bench" / "results") / "scale_year.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
    print(f"wrote {path}")
    modes = [results[m] for m in MODES]
    return 0 if all(m["exactly_once"] and m["commit_s"] for m in modes) else 1


if __name__ == "__main__":
    sys.exit(main())

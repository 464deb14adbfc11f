"""A nightly commit's lake coverage against a full month (`make bench`, "A month's
sums, a day at a time" section).

The lake keeps a brand's per-location sums in one object per month
(docs/contracts.md, "Lake coverage"): at 8,000 locations, on the 30th, 30 days x
8,000 entries. The nightly run commits one day of it. Measured, each in a fresh
child process, the commit's `record_commit` of that day (exporter/lake/commit.py)
as it is, which decodes only the day it replaces (`lake.records.update_days`),
against the same commit with every day of the month decoded and encoded again
(`whole`, the way before): its CPU and the rise of the process's peak RSS.

    python -m bench.lake_month [--smoke]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):  # run as `python bench/lake_month.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: F401 -- puts functions/exporter on sys.path
from bench.common import PY, ROOT
from exporter import json_codec
from exporter.lake import records as lake
from exporter.lake.commit import record_commit
from exporter.lake.sums import replace_day
from exporter.memory import release_free_memory
from exporter.ports import ObjectStore
from exporter.run.counters import Counters
from exporter.run.coverage import WHOLE
from exporter.run.records import RunPlan, StagedObject, StepRecord

BRAND, PREFIX, MONTH = 9002, "st", "2023-06"
EARLIER, NIGHTLY = "20230601T033000000Z-b9002-0123abcd", "20230701T033000000Z-b9002-4567ef01"
MODES = ("per-day", "whole")


class _Store:
    """The conditional reads and writes `lake.update` makes, in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        body = self.objects.get(key)
        return None if body is None else (body, str(id(body)))

    def put_if_absent(self, key: str, body: bytes) -> bool:
        return self.objects.setdefault(key, body) is body

    def put_if_match(self, key: str, body: bytes, etag: str) -> bool:
        if etag != str(id(self.objects.get(key))):
            return False
        self.objects[key] = body
        return True


def day_sums(locations: int, seed: int) -> dict[str, list[int]]:
    """[visits, rows, hours, digest] of each location, as rows.add_tallies counts them."""
    rng = random.Random(seed)
    return {
        str(BRAND * 100_000 + i): [rng.randrange(5_000), 24, (1 << 24) - 1, rng.getrandbits(48)]
        for i in range(locations)
    }


def month_document(locations: int, days: int) -> bytes:
    """The month's sums object after an earlier run committed each of its days."""
    month: dict[str, Any] = {}
    for n in range(1, days + 1):
        dt = f"{MONTH}-{n:02d}"
        day, _ = replace_day(None, EARLIER, day_sums(locations, n), WHOLE.covers(dt))
        month[dt] = day.to_dict()
    return json_codec.dumps({"v": 1, "days": month})


def _update_whole(store: Any, key: str, days: Any, change: Any) -> None:
    """`lake.records.update_days` decoding and encoding every day of the month."""

    def change_all(doc: dict[str, Any]) -> None:
        for dt in days:
            doc["days"][dt] = change(dt, doc["days"].get(dt))

    lake.update(store, key, change_all)  # the whole object parsed, and written again


def _vm(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def child(mode: str, locations: int, days: int) -> dict[str, Any]:
    """One nightly commit of the month's last day, in this (fresh) process."""
    store = _Store()
    key = lake.month_key(PREFIX, BRAND, "utc", MONTH, "sums")
    store.objects[key] = month_document(locations, days)
    last = date.fromisoformat(f"{MONTH}-{days:02d}")
    plan = RunPlan(NIGHTLY, BRAND, last, last, "utc", "scheduled", "t", windows=())
    sums = day_sums(locations, 10_000 + days)  # the day's numbers as the API restates them
    objects = (StagedObject(last.isoformat(), "k", 24 * locations, 1, sums),)
    steps = [StepRecord(0, 0, "a", None, objects, Counters(), "t")]
    if mode == "whole":
        lake.update_days = _update_whole
    release_free_memory()
    Path("/proc/self/clear_refs").write_text("5")  # the peak from here on
    before = _vm("VmRSS:")
    started = time.process_time()
    # The lake commit makes only the calls _Store has (the four of `lake.update`).
    changes = record_commit(
        cast("ObjectStore", store), PREFIX, plan, steps, WHOLE, committed_at="t"
    )
    cpu = time.process_time() - started
    assert changes is not None and changes["days"][last.isoformat()]["locations"] == locations
    return {"cpu_s": cpu, "peak_rise_mb": _vm("VmHWM:") - before}


def measure(smoke: bool = False, reps: int | None = None) -> dict[str, Any]:
    locations, days = (50, 3) if smoke else (8_000, 30)
    reps = reps or (1 if smoke else 3)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for rep in range(reps):
        for mode in MODES[rep % 2 :] + MODES[: rep % 2]:  # interleaved, alternating first
            argv = [PY, "-m", "bench.lake_month", "--child", mode]
            argv += ["--locations", str(locations), "--days", str(days)]
            out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True)
            runs[mode].append(json.loads(out.stdout))
    figures = {
        mode: {
            name: round(statistics.median(r[name] for r in got), 4)
            for name in ("cpu_s", "peak_rise_mb")
        }
        for mode, got in runs.items()
    }
    return {
        "locations": locations,
        "days": days,
        "document_bytes": len(month_document(locations, days)),
        "repetitions": reps,
        **figures,
    }


def section(res: dict[str, Any]) -> str:
    """The "A month's sums, a day at a time" section of docs/performance.md."""
    mine, whole = res["per-day"], res["whole"]
    return "\n".join(
        [
            "## A month's sums, a day at a time",
            "",
            f"A nightly commit's lake coverage on day {res['days']} of a month of "
            f"{res['locations']:,} locations (the month's sums object "
            f"{res['document_bytes'] / 1e6:.1f} MB; median of {res['repetitions']}, each in a "
            "fresh process; bench/lake_month.py): decoding only the day it replaces, "
            f"{mine['cpu_s'] * 1000:.0f} ms CPU and {mine['peak_rise_mb']:.0f} MB above the "
            f"RSS it started at; decoding and encoding every day, {whole['cpu_s'] * 1000:.0f} "
            f"ms and {whole['peak_rise_mb']:.0f} MB.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lake_month", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="50 locations, 3 days, 1 repetition")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--locations", type=int, default=8_000, help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, default=30, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.locations, args.days)))
        return 0
    res = measure(args.smoke)
    print(json.dumps(res, indent=2))
    print(section(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

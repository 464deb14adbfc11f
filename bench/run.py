"""`make bench`: the exporter against two baselines, on moto + the fake analytiks API.

    python -m bench.run            # full size: bench/results/latest.json + docs/performance.md
    python -m bench.run --smoke    # tiny sizes into a temp dir: checks the harness, not timings
    python -m bench.run --out DIR  # write latest.json and performance.md into DIR instead

Every server and every measured workload runs in its own process; see
docs/performance.md ("Method") for what is measured and how.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import lake_month, parquet, report
from bench.common import (
    EXPORTER_DIR,
    PY,
    ROOT,
    compile_sources,
    function_memory_mb,
    machine,
    source_state,
    stop_on_signals,
)
from bench.procs import Measured, Processes
from bench.run_figures import (
    add_ratios,
    api_checks,
    cost,
    expected_row_count,
    median,
    summarize,
    targets,
)
from bench.stack import STATE_PREFIX, Stack, base_env, start_stack

CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret"
PAGE_SIZE = 50
WINDOW_DAYS = 5
BUCKET = "wifi-export-bench"
MODES = ("bare", "raw-gzip", "exporter")
# Also measured pinned to one core (PINNED_CPU), as Lambda at 1,769 MB runs them: one vCPU.
PINNED_CPU = 0
# json-only: the exporter without its Parquet twin (bench/child.py), on one core too.
PINNED_MODES = (*MODES, "json-only")
WITH_SELECTION = (*PINNED_MODES, "selection")
SELECTION_BRAND_OFFSET = 100  # the same locations chosen by id (v1, 40 batches)


@dataclass(frozen=True)
class Workload:
    name: str
    brand: int
    locations: int
    first: date
    last: date
    modes: tuple[str, ...]

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def location_hours(self) -> int:
        return self.locations * self.days * 24

    def windows(self) -> list[tuple[str, str]]:
        from exporter.planning import request_range, split_windows  # noqa: PLC0415

        return [request_range(w, "utc") for w in split_windows(self.first, self.last, WINDOW_DAYS)]


FULL = (
    Workload("2000x5d", 9001, 2000, date(2023, 6, 1), date(2023, 6, 5), WITH_SELECTION),
    Workload("8000x5d", 9002, 8000, date(2023, 6, 1), date(2023, 6, 5), MODES),
    Workload("2000x30d", 9001, 2000, date(2023, 6, 1), date(2023, 6, 30), ("exporter",)),
)
SMOKE = (Workload("100x1d", 9001, 100, date(2023, 6, 1), date(2023, 6, 1), WITH_SELECTION),)


class Bench:
    """One measured process per workload and mode, against a fake API in its own
    process and the `Stack`."""

    def __init__(self, procs: Processes, work: Path, smoke: bool) -> None:
        self.procs = procs
        self.work = work
        self.smoke = smoke
        self.env: dict[str, str] = {}
        self.api_url = ""
        self.serial = 0

    # -- servers and resources -----------------------------------------------------

    def start(self, brands: str) -> None:
        base = base_env()
        _, self.api_url = self.procs.server(
            lambda port: [
                PY,
                "-m",
                "local.fake_analytiks",
                "--port",
                str(port),
                "--brands",
                brands,
                "--page-size",
                str(PAGE_SIZE),
                "--client",
                f"{CLIENT_ID}:{CLIENT_SECRET}",
            ],
            env=base,
            cwd=ROOT,
            name="fake-analytiks",
            ready_path="/health",
        )
        self.stack: Stack = start_stack(self.procs, base, BUCKET, CLIENT_ID, CLIENT_SECRET)
        self.env = self.stack.exporter_env(
            self.api_url,
            WINDOW_DAYS=str(WINDOW_DAYS),
            TIME_SAFETY_MARGIN_MS="5000",
            LOG_LEVEL="WARNING",
            POWERTOOLS_LOG_LEVEL="WARNING",
        )

    def fake_counters(self) -> dict[str, Any] | None:
        """The fake's counters, if it serves them over HTTP (it serves only /health today)."""
        for path in ("/stats", "/_stats"):
            try:
                with urllib.request.urlopen(self.api_url + path, timeout=5) as answer:  # noqa: S310
                    body = json.loads(answer.read())
                    if isinstance(body, dict):
                        return body
            except (OSError, ValueError):
                continue
        return None

    # -- children ------------------------------------------------------------------

    def spec(self, w: Workload) -> Path:
        path = self.work / f"spec-{w.name}.json"
        path.write_text(
            json.dumps(
                {
                    "api_url": self.api_url,
                    "token_url": self.api_url + "/oauth/token",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "brand": w.brand,
                    "locations": w.locations,
                    "selection_brand": w.brand + SELECTION_BRAND_OFFSET,
                    "start": w.first.isoformat(),
                    "end": w.last.isoformat(),
                    "windows": w.windows(),
                    "bucket": self.stack.bucket,
                    "state_prefix": STATE_PREFIX,
                    "queue_url": self.stack.queue_url,
                    "inbox_url": self.stack.inbox_url,
                }
            )
        )
        return path

    def child(self, mode: str, w: Workload, pinned: bool = False) -> dict[str, Any]:
        self.serial += 1
        name = f"{self.serial:03d}-{w.name}-{mode}{'-1cpu' if pinned else ''}"
        result = self.work / f"{name}.json"
        argv = [PY, "-m", "bench.child", mode, "--spec", str(self.spec(w)), "--result", str(result)]
        cpus = [PINNED_CPU] if pinned else None
        if pinned:  # the fake API and moto keep to the other cores, out of its way
            self.procs.pin_servers(set(range(os.cpu_count() or 1)) - {PINNED_CPU} or None)
        try:
            m: Measured = self.procs.measure(argv, self.env, ROOT, name, cpus)
        finally:
            if pinned:
                self.procs.pin_servers(None)
        if m.returncode != 0 or not result.exists():
            log = (self.work / f"{name}.out").read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{name} failed (exit {m.returncode}):\n{log}")
        out: dict[str, Any] = json.loads(result.read_text())
        # Wall time from the fork to the end of the job: the child's own checks of
        # what it did afterwards (manifest, notification) are not the job.
        wall = out.pop("done_at") - m.spawned_at
        # CPU: the rusage less what the child spent playing Lambda (bench/child.py).
        harness = out.pop("harness_cpu_s", 0.0)
        out.update(wall_s=wall, process_wall_s=m.wall_s, cpu_s=m.cpu_s - harness)
        out.update(process_cpu_s=m.cpu_s, harness_cpu_s=harness, user_s=m.user_s)
        out.update(sys_s=m.sys_s, rss_mb=m.maxrss_mb)
        out.update(minor_faults=m.minor_faults, context_switches=m.context_switches)
        print(
            f"  {w.name:9} {mode + (' 1cpu' if pinned else ''):13}  wall {wall:7.2f} s  "
            f"cpu {m.cpu_s - harness:7.2f} s (+ harness {harness:4.2f})  "
            f"rss {m.maxrss_mb:6.1f} MB",
            flush=True,
        )
        return out

    def workload(self, w: Workload, reps: int) -> dict[str, Any]:
        print(f"{w.name}: pre-warming the fake API's page cache", flush=True)
        warm = self.child("bare", w)
        if "selection" in w.modes:
            # The selection reads v1 answers of its twin brand: warm those too, and
            # leave a committed selection behind, so every measured one replaces one.
            self.child("selection", w)
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in w.modes}
        one_core = tuple(m for m in PINNED_MODES if m in w.modes)
        pinned: dict[str, list[dict[str, Any]]] = {mode: [] for mode in one_core}
        for rep in range(reps):
            # Interleaved, and rotated so no mode always runs first after a pause.
            order = w.modes[rep % len(w.modes) :] + w.modes[: rep % len(w.modes)]
            for mode in order:
                runs[mode].append(self.child(mode, w))
            # The same on one core: the baselines and the exporter alike.
            for mode in one_core[rep % len(one_core) :] + one_core[: rep % len(one_core)]:
                pinned[mode].append(self.child(mode, w, pinned=True))
        expected_pages = math.ceil(w.locations / PAGE_SIZE) * len(w.windows())
        return {
            "name": w.name,
            "brand": w.brand,
            "locations": w.locations,
            "days": w.days,
            "start": w.first.isoformat(),
            "end": w.last.isoformat(),
            "windows": len(w.windows()),
            "location_hours": w.location_hours,
            "expected_pages": expected_pages,
            "prewarm": {"wall_s": warm["wall_s"], "pages": warm["pages"]},
            "modes": {mode: summarize(w, runs[mode]) for mode in w.modes},
            "pinned": {mode: summarize(w, pinned[mode]) for mode in one_core},
        }

    # -- figures outside the measured children ----------------------------------------

    def output_size(self, keys: list[str]) -> dict[str, Any]:
        """The exporter's objects against stdlib gzip level 6 of the very same JSON Lines."""
        exporter_bytes = stdlib_bytes = raw_bytes = rows = 0
        for key in keys:
            body = self.stack.s3.get_object(Bucket=self.stack.bucket, Key=key)["Body"].read()
            lines = gzip.decompress(body)
            exporter_bytes += len(body)
            raw_bytes += len(lines)
            rows += lines.count(b"\n")
            stdlib_bytes += len(gzip.compress(lines, compresslevel=6))
        per_row, stdlib_per_row = (exporter_bytes / rows, stdlib_bytes / rows) if rows else (0, 0)
        return {
            "objects": len(keys),
            "rows": rows,
            "json_lines_bytes": raw_bytes,
            "exporter_bytes": exporter_bytes,
            "stdlib_gzip6_bytes": stdlib_bytes,
            "json_lines_bytes_per_row": raw_bytes / rows if rows else 0.0,
            "exporter_bytes_per_row": per_row,
            "stdlib_gzip6_bytes_per_row": stdlib_per_row,
            "ratio": per_row / stdlib_per_row if stdlib_per_row else 0.0,
        }

    def cold_start(self, runs: int) -> dict[str, Any]:
        probe = (
            "import json, sys, time\n"
            "{setup}"
            "t = time.perf_counter()\n"
            "import {module}\n"
            "s = time.perf_counter() - t\n"
            "print(json.dumps({{'import_s': s, 'boto3_loaded': 'boto3' in sys.modules,"
            " 'modules': len(sys.modules)}}))\n"
        )
        codes = {
            "boto3": probe.format(setup="", module="boto3"),
            "app": probe.format(setup=f"sys.path.insert(0, {str(EXPORTER_DIR)!r})\n", module="app"),
        }
        found: dict[str, list[dict[str, Any]]] = {name: [] for name in codes}
        for rep in range(runs + 1):  # the first round only warms .pyc files and the page cache
            for name, code in codes.items():
                self.serial += 1
                label = f"{self.serial:03d}-import-{name}"
                m = self.procs.measure([PY, "-c", code], self.env, ROOT, label)
                text = (self.work / f"{label}.out").read_text().strip().splitlines()
                if m.returncode != 0 or not text:
                    raise RuntimeError(f"{label} failed (exit {m.returncode}): {text[-5:]}")
                if rep:
                    found[name].append({**json.loads(text[-1]), "wall_s": m.wall_s})
        out: dict[str, Any] = {"runs": runs}
        for name, items in found.items():
            out[name] = {
                "import_s": median([i["import_s"] for i in items]),
                "process_wall_s": median([i["wall_s"] for i in items]),
                "boto3_loaded": items[-1]["boto3_loaded"],
                "modules": items[-1]["modules"],
            }
        out["ratio"] = out["app"]["import_s"] / out["boto3"]["import_s"]
        boto3_ms, app_ms = (out[name]["import_s"] * 1000 for name in ("boto3", "app"))
        print(f"cold start: import boto3 {boto3_ms:.0f} ms, import app {app_ms:.0f} ms", flush=True)
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 repetition")
    parser.add_argument("--out", type=Path, help="directory for latest.json + performance.md")
    parser.add_argument("--reps", type=int, help="repetitions per measurement (3; smoke 1)")
    parser.add_argument("--only", action="append", help="run only this workload (repeatable)")
    args = parser.parse_args(argv)
    reps = args.reps or (1 if args.smoke else 3)
    workloads = tuple(
        w for w in (SMOKE if args.smoke else FULL) if not args.only or w.name in args.only
    )
    if args.out is not None:
        json_path, md_path = args.out / "latest.json", args.out / "performance.md"
    elif args.smoke:
        tmp = Path(tempfile.mkdtemp(prefix="bench-smoke-"))
        json_path, md_path = tmp / "latest.json", tmp / "performance.md"
    else:
        json_path = ROOT / "bench" / "results" / "latest.json"
        md_path = ROOT / "docs" / "performance.md"
    # A selection exports a twin brand (as many locations, its own deterministic data):
    # committing it must not rewrite the whole-brand run's objects that are measured after.
    sizes = {w.brand: w.locations for w in workloads}
    sizes.update({w.brand + SELECTION_BRAND_OFFSET: w.locations for w in workloads})
    brands = ",".join(f"{b}:{n}" for b, n in sorted(sizes.items()))

    stop_on_signals()
    started = time.perf_counter()
    source = source_state()
    compile_sources()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_dir:
        work = Path(tmp_dir)
        procs = Processes(work)
        try:
            bench = Bench(procs, work, args.smoke)
            bench.start(brands)
            print(f"fake API {bench.api_url}, moto {bench.env['AWS_ENDPOINT_URL']}", flush=True)
            results: dict[str, Any] = {
                "machine": machine(),
                "source": source,
                "config": {
                    "smoke": args.smoke,
                    "repetitions": reps,
                    "page_size": PAGE_SIZE,
                    "window_days": WINDOW_DAYS,
                    "fake_api_brands": brands,
                },
                "workloads": [],
            }
            results["cold_start"] = bench.cold_start(2 if args.smoke else 5)
            for w in workloads:
                wl = bench.workload(w, reps)
                add_ratios(wl)
                results["workloads"].append(wl)
                if w is workloads[0]:
                    # Before any later run of this brand replaces these partitions.
                    # The newest exporter run's objects (each run replaces the last's).
                    newest = (wl.get("pinned") or wl["modes"]).get(
                        "exporter", wl["modes"]["exporter"]
                    )
                    results["output_size"] = bench.output_size(newest["data_keys"])
            results["fake_api_counters"] = bench.fake_counters()
            results["parquet"] = parquet.measure(args.smoke)  # bench/parquet.py
            results["lake_month"] = lake_month.measure(args.smoke)  # bench/lake_month.py
        finally:
            procs.close()
    for wl in results["workloads"]:
        wl["expected_rows"] = expected_row_count(wl)
        wl["rows_match"] = wl["modes"]["exporter"]["rows"] == wl["expected_rows"]
        wl["modes"]["exporter"].pop("data_keys", None)
        (wl.get("pinned") or {}).get("exporter", {}).pop("data_keys", None)
    if source_state()["exporter_sha256"] != source["exporter_sha256"]:
        results["source"]["changed_during_run"] = True
        print("WARNING: functions/exporter changed during the run; figures are mixed", flush=True)
    results["api"] = api_checks(results)
    results["api"]["fake_api_counters"] = results.pop("fake_api_counters")
    results["cost"] = cost(results, function_memory_mb())
    results["targets"] = targets(results)
    results["duration_s"] = time.perf_counter() - started

    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    report.write(md_path, results)
    print(report.summary(results))
    print(f"wrote {json_path} and {md_path} in {results['duration_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

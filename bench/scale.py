"""`make bench-scale`: a year's backfill and a 200-brand night, N pollers draining at once.

    python -m bench.scale                      # full: scale section of docs/performance.md,
                                               # docs/bench-scale.svg, bench/results/scale.json
    python -m bench.scale --smoke --out DIR    # tiny sizes, a minute: the test suite's check
    python -m bench.scale --workers 8 --only backfill --out DIR   # a part of it
    python -m bench.scale --smoke --only strict --out DIR  # the strict 1-s limiter (scale_strict)

One moto server process, the fake analytiks API in this process (latency per
request, an optional rate limit, request arrival times), and for every scenario
N worker processes (`local.pollers`), each a Lambda container polling the real
queue, plus one process for the invocation that starts the runs. Wall time runs
from starting that invocation to the last run's `notified` marker. Afterwards,
outside the timing, every table object is read back and counted against the
data model, a sample of partitions row by row, the status, manifest and
notification of every run; then the bucket is emptied for the next scenario.
See docs/performance.md ("Scale") for the method, the choices and the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/scale.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import scale_check, scale_cost, scale_plot, scale_report, scale_strict
from bench.common import ROOT, function_memory_mb, machine, source_state, stop_on_signals
from bench.procs import Processes
from bench.scale_figures import cpu_snapshot, figures
from bench.scale_plan import PAGE_SIZE, Scenario, Workload, workloads
from bench.stack import STATE_PREFIX, Stack, base_env, start_stack
from local.fake_analytiks import FakeAnalytiks
from local.pollers import Pollers, exited, finish_invocation, run_invocation

CLIENT_ID, CLIENT_SECRET = "scale-client", "scale-secret"
BUCKET = "wifi-export-scale"


# -- the bench ------------------------------------------------------------------------


@dataclass
class Bench:
    procs: Processes
    work: Path
    smoke: bool
    api: FakeAnalytiks = field(init=False)
    env: dict[str, str] = field(default_factory=dict)

    def start(self, brands: dict[int, int]) -> None:
        self.stack: Stack = start_stack(self.procs, base_env(), BUCKET, CLIENT_ID, CLIENT_SECRET)
        self.s3, self.sqs, self.bucket = self.stack.s3, self.stack.sqs, self.stack.bucket
        self.queue_url, self.inbox_url = self.stack.queue_url, self.stack.inbox_url
        # In this process: its knobs (latency, rate limit) and counters are at hand.
        # Pages are kept compressed: a year of a 2,000-location brand is 14,600 of them.
        self.api = FakeAnalytiks(
            brands=brands,
            clients={CLIENT_ID: (CLIENT_SECRET, None)},
            page_size=PAGE_SIZE,
            cache_bytes=3 * 1024**3,
            compress_cache=True,
        ).start()
        self.env = self.stack.exporter_env(
            self.api.url,
            WINDOW_DAYS="1",
            LOOKBACK_DAYS="1",
            TIME_SAFETY_MARGIN_MS="60000",
            MAX_RECEIVE_COUNT="10",
            MAX_BRANDS_PER_EVENT="1000",
            # The deployment's default level: what CloudWatch Logs would ingest.
            LOG_LEVEL="INFO",
            POWERTOOLS_LOG_LEVEL="INFO",
        )

    def warm(self, w: Workload) -> None:
        """Render every page the workload asks for, untimed: otherwise the first scenario
        of a workload pays the fake's rendering (90 CPU-s of the nightly run's pages)
        on the same two cores as the exporter, and the later ones do not."""
        started = time.perf_counter()
        pages = sum(
            self.api.warm_v3(brand, f"{day}T00:00:00.000Z", f"{day}T23:59:59.999Z")
            for brand in w.brands
            for day in w.day_list()
        )
        print(f"{w.name}: {pages:,} pages rendered in {time.perf_counter() - started:.0f} s")

    # -- one scenario ---------------------------------------------------------------

    def event(self, w: Workload) -> dict[str, Any]:
        if w.trigger == "scheduled":
            return {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                "detail": {},
            }
        last = w.first + timedelta(days=w.days - 1)
        return {"brandIds": list(w.brands), "startDate": str(w.first), "endDate": str(last)}

    def run(self, sc: Scenario, tag: str = "", **more_env: str) -> dict[str, Any]:
        w = sc.workload
        work = self.work / (sc.name + tag)
        work.mkdir()
        self.api.reset_stats()
        self.api.faults.latency = sc.latency_s
        self.api.faults.rate_limit = sc.rate_limit
        self.api.faults.rate_limit_sliding = sc.sliding
        self.api.faults.retry_after = 1
        env = {
            **self.env,
            "MAX_CONCURRENCY": str(sc.workers),  # as the template sets it: the mapping's value
            "API_MAX_RPS": f"{sc.rate_limit:g}" if sc.rate_limit else "",
            "BRAND_IDS": ",".join(map(str, w.brands)) if w.trigger == "scheduled" else "",
            **more_env,
        }
        pollers = Pollers(sc.workers, env, work)
        try:
            pollers.wait_ready()
            before = cpu_snapshot(self.stack.moto.pid)
            t0 = time.time()
            starter = run_invocation(self.event(w), env, work)
            notes = self.wait_for_runs(len(w.brands), starter)
            self.wait_for_empty_queue()
            finished = pollers.stop()
        except BaseException:
            pollers.kill()
            raise
        started = finish_invocation(starter, work)
        after = cpu_snapshot(self.stack.moto.pid)
        if started.returncode or any(f.returncode for f in finished):
            raise RuntimeError(f"{sc.name}: a process failed; see {work}")
        run_ids = [r["runId"] for r in started.report["response"]["runs"]]
        end = max(self.notified_at(run_id) for run_id in run_ids)
        out = figures(self.api, sc, t0, end, started, finished, before, after, work)
        out["fanned_out_s"] = started.report["fanned_out"] - t0
        out["commit_s"] = [s for f in (started, *finished) for s in f.report.get("commits", [])]
        out["checks"] = scale_check.verify(self, sc, run_ids, notes)
        self.clean()
        return out

    def wait_for_runs(self, runs: int, starter: Any, timeout_s: float = 7200) -> Counter[str]:
        """Notifications by run id, read from the topic's inbox until every run has one."""
        notes: Counter[str] = Counter()
        self.statuses: dict[str, str] = {}
        deadline = time.monotonic() + timeout_s
        while len(notes) < runs or not exited(starter):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(notes)} of {runs} runs notified after {timeout_s} s")
            self.read_inbox(notes, wait_s=1)
        return notes

    def read_inbox(self, notes: Counter[str], wait_s: int) -> None:
        got = self.sqs.receive_message(
            QueueUrl=self.inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s
        ).get("Messages", [])
        for message in got:
            body = json.loads(json.loads(message["Body"])["Message"])
            notes[body["runId"]] += 1
            self.statuses[body["runId"]] = body["status"]
            self.sqs.delete_message(QueueUrl=self.inbox_url, ReceiptHandle=message["ReceiptHandle"])

    def queue_depth(self) -> int:
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        got = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)
        return sum(int(got["Attributes"].get(n, 0)) for n in names)

    def wait_for_empty_queue(self, timeout_s: float = 300) -> None:
        """Messages left after the last notification (a finisher that found the lease
        held, duplicates) are delivered too: they are invocations the run costs."""
        deadline = time.monotonic() + timeout_s
        quiet = 0
        while quiet < 2 and time.monotonic() < deadline:
            quiet = quiet + 1 if self.queue_depth() == 0 else 0
            time.sleep(0.5)

    def notified_at(self, run_id: str) -> float:
        key = f"{STATE_PREFIX}/runs/{run_id}/notified.json"
        doc = json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        return datetime.fromisoformat(doc["at"].replace("Z", "+00:00")).timestamp()

    # -- checks ---------------------------------------------------------------------

    def clean(self) -> None:
        """Empty the bucket: every scenario starts from nothing (the queues are empty by now)."""
        keys = scale_check.list_keys(self.s3, self.bucket, "")
        for n in range(0, len(keys), 1000):
            self.s3.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[n : n + 1000]], "Quiet": True},
            )


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    loads = workloads(args.smoke, args.days, args.brands)
    names = [name for name in args.only or list(loads) if name in loads]
    out = [Scenario(loads[name], n, args.latency) for name in names for n in args.workers]
    if args.rate_limit:
        out += [
            Scenario(loads[name], args.rate_workers, args.latency, args.rate_limit)
            for name in names
        ]
    if scale_strict.NAME in (args.only or [scale_strict.NAME]) and not args.no_strict:
        out.append(scale_strict.scenario(args.smoke, args.latency, args.strict_days))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (the test suite)")
    parser.add_argument("--out", type=Path, help="write scale.json, the section and the plot here")
    parser.add_argument("--only", action="append", choices=("backfill", "nightly", "strict"))
    parser.add_argument(
        "--workers",
        type=lambda text: [int(n) for n in text.split(",")],
        help="poller counts (default 1,2,4,8,16; smoke 1,2)",
    )
    parser.add_argument("--latency", type=float, help="seconds per API answer (see the docs)")
    parser.add_argument("--rate-limit", type=float, help="requests/s of the rate-limited runs")
    parser.add_argument("--rate-workers", type=int, default=8)
    parser.add_argument("--days", type=int, help="backfill days (a partial run; default 365)")
    parser.add_argument("--brands", type=int, help="nightly brands (a partial run; default 200)")
    parser.add_argument("--no-rate-limit", action="store_true", help="skip the rate-limited runs")
    parser.add_argument("--no-strict", action="store_true", help="skip the strict-limiter run")
    parser.add_argument("--strict-days", type=int, help="days of the strict-limiter run")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the section and the plot from an existing scale.json (no runs)",
    )
    args = parser.parse_args(argv)
    args.workers = args.workers or ([1, 2] if args.smoke else [1, 2, 4, 8, 16])
    if args.latency is None:
        args.latency = 0.02 if args.smoke else DEFAULT_LATENCY_S
    if args.rate_limit is None:
        args.rate_limit = 20.0 if args.smoke else DEFAULT_RATE_LIMIT
    if args.no_rate_limit:
        args.rate_limit = 0.0
    out_dir = args.out or (Path(tempfile.mkdtemp(prefix="bench-scale-")) if args.smoke else None)
    json_path = (out_dir or ROOT / "bench" / "results") / "scale.json"
    md_path = (out_dir / "performance.md") if out_dir else ROOT / "docs" / "performance.md"
    svg_path = (out_dir or ROOT / "docs") / "bench-scale.svg"
    if args.report_only:
        write_outputs(json.loads(json_path.read_text()), json_path, svg_path, md_path)
        return 0

    stop_on_signals()
    plan = scenarios(args)
    brands = {b: sc.workload.locations for sc in plan for b in sc.workload.brands}
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": machine(),
        "source": source_state(),
        "config": {
            "smoke": args.smoke,
            "latency_s": args.latency,
            "rate_limit": args.rate_limit,
            "page_size": PAGE_SIZE,
            "window_days": 1,
            "memory_mb": function_memory_mb(),
            "workloads": {
                w.name: {**asdict(w), "pages": w.pages, "brand_days": w.brand_days}
                for w in {sc.workload.name: sc.workload for sc in plan}.values()
            },
        },
        "scenarios": [],
    }
    # The data model's row counts, before any timing (cached on disk after the first run).
    for w in {sc.workload.name: sc.workload for sc in plan}.values():
        scale_check.expected_counts((b, w.locations, d) for b in w.brands for d in w.day_list())
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        procs = Processes(Path(tmp))
        bench = Bench(procs, Path(tmp), args.smoke)
        try:
            bench.start(brands)
            for w in {sc.workload.name: sc.workload for sc in plan}.values():
                bench.warm(w)
            for sc in plan:
                print(
                    f"{sc.name}: {sc.workload.pages:,} pages, limit {sc.limit_s:.1f} s", flush=True
                )
                figures = bench.run(sc)
                results["scenarios"].append(figures)
                checks = figures["checks"]
                print(
                    f"  wall {figures['wall_s']:.1f} s ({_ratio(figures)} x limit), "
                    f"429s {figures['throttled_share']:.1%}, max 5-s rate "
                    f"{figures['max_rate_5s']:.1f}/s, invocations {figures['invocations']}, "
                    f"exactly once: {'yes' if checks['ok'] else checks['problems']}",
                    flush=True,
                )
        finally:
            if getattr(bench, "api", None) is not None:
                bench.api.stop()
            procs.close()
    results["duration_s"] = time.perf_counter() - started
    write_outputs(results, json_path, svg_path, md_path)
    failed = [s["scenario"] for s in results["scenarios"] if not s["checks"]["ok"]]
    return 1 if failed else 0


def write_outputs(results: dict[str, Any], json_path: Path, svg_path: Path, md_path: Path) -> None:
    """scale.json, the plot and the page's scale section (costs and targets derived here)."""
    results["cost"] = scale_cost.costs(results)
    results["targets"] = scale_report.targets(results)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
    svg_path.write_text(scale_plot.svg(results))
    scale_report.write_section(md_path, results, svg_path.name)
    print(scale_report.summary(results))
    print(f"wrote {json_path}, {svg_path} and {md_path} in {results['duration_s']:.0f} s")


def _ratio(figures: dict[str, Any]) -> str:
    ratio = figures.get("wall_vs_limit")
    return "-" if ratio is None else f"{ratio:.2f}"


# Chosen by measurement (docs/performance.md, "Scale"): see scale_report.METHOD.
DEFAULT_LATENCY_S = 0.08
DEFAULT_RATE_LIMIT = 60.0


if __name__ == "__main__":
    sys.exit(main())

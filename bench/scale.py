"""`make bench-scale`: a year's backfill and a 200-brand night, N pollers draining at once.

    python -m bench.scale                      # full: scale section of docs/performance.md,
                                               # docs/bench-scale.svg, bench/results/scale.json
    python -m bench.scale --smoke --out DIR    # tiny sizes, a minute: the test suite's check
    python -m bench.scale --workers 8 --only backfill --out DIR   # a part of it

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
import math
import os
import platform
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXPORTER_DIR = ROOT / "functions" / "exporter"
if __package__ in (None, ""):  # run as `python bench/scale.py`
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(EXPORTER_DIR))

from bench import scale_check, scale_report  # noqa: E402
from bench.procs import Processes  # noqa: E402
from local.contract import parse_data_key  # noqa: E402
from local.fake_analytiks import FakeAnalytiks  # noqa: E402
from local.pollers import Pollers, exited, finish_invocation, run_invocation  # noqa: E402
from local.resources import clients, provision  # noqa: E402

PY = sys.executable
REGION = "us-east-1"
CLIENT_ID, CLIENT_SECRET = "scale-client", "scale-secret"
PAGE_SIZE = 50
BUCKET = "wifi-export-scale"
DATA_PREFIX, STATE_PREFIX = "wifi/metrics", "wifi/_exports"
MEMORY_MB = 1769  # template.yaml FunctionMemory default (bench/run.py reads it too)


@dataclass(frozen=True)
class Workload:
    name: str
    brands: tuple[int, ...]
    locations: int
    first: date
    days: int
    trigger: str  # "on-demand" (a backfill) or "scheduled" (the nightly run)

    @property
    def pages(self) -> int:
        """v3 requests the work needs: one window per day (WINDOW_DAYS=1), 50 locations a page."""
        return len(self.brands) * self.days * math.ceil(self.locations / PAGE_SIZE)

    @property
    def brand_days(self) -> int:
        return len(self.brands) * self.days

    def day_list(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range(self.days)]


@dataclass(frozen=True)
class Scenario:
    workload: Workload
    workers: int
    latency_s: float
    rate_limit: float | None = None  # the fake's limit and API_MAX_RPS alike

    @property
    def name(self) -> str:
        rate = f"-r{self.rate_limit:g}" if self.rate_limit else ""
        return f"{self.workload.name}-w{self.workers}{rate}"

    @property
    def limit_s(self) -> float:
        """The API-bound limit: pages x latency / workers, or requests / rate limit."""
        w = self.workload
        latency_bound = w.pages * self.latency_s / self.workers
        rate_bound = w.pages / self.rate_limit if self.rate_limit else 0.0
        return max(latency_bound, rate_bound)


def yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


def workloads(
    smoke: bool, days: int | None = None, brands: int | None = None
) -> dict[str, Workload]:
    """The two workloads of the issue (`days` / `brands` shrink them for a partial run)."""
    if smoke:
        return {
            "backfill": Workload("backfill", (9101,), 100, date(2023, 1, 1), 3, "on-demand"),
            "nightly": Workload("nightly", (9201, 9202, 9203), 100, yesterday(), 1, "scheduled"),
        }
    nightly = tuple(range(9201, 9201 + (brands or 200)))
    return {
        "backfill": Workload("backfill", (9101,), 2000, date(2023, 1, 1), days or 365, "on-demand"),
        "nightly": Workload("nightly", nightly, 2000, yesterday(), 1, "scheduled"),
    }


# -- measuring the machine ------------------------------------------------------------


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


# -- the bench ------------------------------------------------------------------------


@dataclass
class Bench:
    procs: Processes
    work: Path
    smoke: bool
    api: FakeAnalytiks = field(init=False)
    env: dict[str, str] = field(default_factory=dict)

    def start(self, brands: dict[int, int]) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        base.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_SESSION_TOKEN="testing",
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            PYTHONUNBUFFERED="1",
        )
        self.moto, moto_url = self.procs.server(
            lambda port: [PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=base,
            cwd=ROOT,
            name="moto",
            ready_path="/moto-api/",
        )
        # In this process: its knobs (latency, rate limit) and counters are at hand.
        # Pages are kept compressed: a year of a 2,000-location brand is 14,600 of them.
        self.api = FakeAnalytiks(
            brands=brands,
            clients={CLIENT_ID: (CLIENT_SECRET, None)},
            page_size=PAGE_SIZE,
            cache_bytes=3 * 1024**3,
            compress_cache=True,
        ).start()
        os.environ.update(
            {k: v for k, v in base.items() if k.startswith("AWS_")}, AWS_ENDPOINT_URL=moto_url
        )
        make = clients(REGION, moto_url)
        deployment = provision(make, name=BUCKET, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        self.s3, self.sqs = make("s3"), make("sqs")
        self.bucket = deployment.bucket
        self.queue_url, self.inbox_url = deployment.queue_url, deployment.inbox_url
        self.env = {
            **base,
            "AWS_ENDPOINT_URL": moto_url,
            **deployment.environment(self.api.url, DATA_PREFIX, STATE_PREFIX),
            "TIME_BASIS": "utc",
            "WINDOW_DAYS": "1",
            "LOOKBACK_DAYS": "1",
            "TIME_SAFETY_MARGIN_MS": "60000",
            "MAX_RECEIVE_COUNT": "10",
            "MAX_BRANDS_PER_EVENT": "1000",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "WifiExport",
            "POWERTOOLS_SERVICE_NAME": "wifi-export",
            # The deployment's default level: what CloudWatch Logs would ingest.
            "LOG_LEVEL": "INFO",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }

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

    def run(self, sc: Scenario) -> dict[str, Any]:
        w = sc.workload
        work = self.work / sc.name
        work.mkdir()
        self.api.reset_stats()
        self.api.faults.latency = sc.latency_s
        self.api.faults.rate_limit = sc.rate_limit
        self.api.faults.retry_after = 1
        env = {
            **self.env,
            "MAX_CONCURRENCY": str(sc.workers),  # as the template sets it: the mapping's value
            "API_MAX_RPS": f"{sc.rate_limit:g}" if sc.rate_limit else "",
            "BRAND_IDS": ",".join(map(str, w.brands)) if w.trigger == "scheduled" else "",
        }
        pollers = Pollers(sc.workers, env, work)
        try:
            pollers.wait_ready()
            before = self.cpu_snapshot()
            t0 = time.time()
            starter = run_invocation(self.event(w), env, work)
            notes = self.wait_for_runs(len(w.brands), starter)
            self.wait_for_empty_queue()
            finished = pollers.stop()
        except BaseException:
            pollers.kill()
            raise
        started = finish_invocation(starter, work)
        after = self.cpu_snapshot()
        if started.returncode or any(f.returncode for f in finished):
            raise RuntimeError(f"{sc.name}: a process failed; see {work}")
        run_ids = [r["runId"] for r in started.report["response"]["runs"]]
        end = max(self.notified_at(run_id) for run_id in run_ids)
        out = self.figures(sc, t0, end, started, finished, before, after, work)
        out["fanned_out_s"] = started.report["fanned_out"] - t0
        out["checks"] = self.verify(sc, run_ids, notes)
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
            self._read_inbox(notes, wait_s=1)
        return notes

    def _read_inbox(self, notes: Counter[str], wait_s: int) -> None:
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

    def cpu_snapshot(self) -> dict[str, float]:
        busy, total = _machine_cpu_s()
        return {
            "moto": _proc_cpu_s(self.moto.pid),
            "self": _self_cpu_s(),
            "machine_busy": busy,
            "machine_total": total,
            "load1": os.getloadavg()[0],
        }

    # -- figures --------------------------------------------------------------------

    def figures(  # noqa: PLR0917 -- one scenario's measurements, each named
        self,
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
        stats = self.api.stats
        arrivals = [t for t in self.api.arrivals() if t >= t0]
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

    # -- checks ---------------------------------------------------------------------

    def verify(self, sc: Scenario, run_ids: list[str], notes: Counter[str]) -> dict[str, Any]:
        """Exactly once, from S3: every object counted, a sample row by row; one
        notification, a succeeded status and manifest per run."""
        w = sc.workload
        time.sleep(1)
        self._read_inbox(notes, wait_s=1)  # a late duplicate would show up here
        problems: list[str] = []
        if sorted(notes) != sorted(run_ids) or any(n != 1 for n in notes.values()):
            problems.append(f"notifications per run: {dict(notes)}")
        bad = {r: s for r, s in self.statuses.items() if s != "succeeded"}
        if bad:
            problems.append(f"runs not succeeded: {bad}")
        keys_by_brand: dict[int, list[str]] = {}
        steps = windows = 0
        for run_id in run_ids:
            root = f"{STATE_PREFIX}/runs/{run_id}/"
            status = self._json(root + "status.json")
            manifest = self._json(root + "manifest.json")
            if (status.get("state"), status.get("windowsDone")) != (
                "succeeded",
                manifest.get("windows"),
            ):
                problems.append(
                    f"{run_id}: status {status.get('state')} {status.get('windowsDone')}"
                )
            brand = int(manifest["brandId"])
            keys_by_brand[brand] = sorted(k for p in manifest["partitions"] for k in p["keys"])
            steps += int(manifest["steps"])
            windows += int(manifest["windows"])
        listed = self._list(DATA_PREFIX + "/")
        manifested = sorted(k for keys in keys_by_brand.values() for k in keys)
        if sorted(listed) != manifested:
            problems.append(
                f"table objects {len(listed)} != manifests' {len(manifested)} "
                "(foreign, duplicate or missing objects)"
            )
        counted = scale_check.count_rows(self.bucket, listed)
        rows: Counter[tuple[int, date]] = Counter()
        for key, (lines, _) in counted.items():
            part = parse_data_key(key)  # the layout of DESIGN §3, or an AssertionError
            if part.basis != "utc":  # the scale runs are UTC runs
                problems.append(f"{key}: a {part.basis} partition")
            rows[part.brand_id, date.fromisoformat(part.dt)] += lines
        expected = scale_check.expected_counts(
            (b, w.locations, d) for b in w.brands for d in w.day_list()
        )
        wrong = {
            f"{b}/{d}": (rows.get((b, d), 0), n)
            for (b, d), n in expected.items()
            if rows.get((b, d), 0) != n
        }
        if wrong:
            problems.append(
                f"{len(wrong)} brand-days with wrong row counts, e.g. {list(wrong.items())[:3]}"
            )
        sample = random.Random(sc.name).sample(sorted(expected), k=min(2, len(expected)))
        for brand, day in sample:
            keys = [k for k in keys_by_brand.get(brand, []) if f"/dt={day}/" in k]
            problems += scale_check.check_partition(
                self.s3, self.bucket, keys, brand=brand, locations=w.locations, day=day
            )
        backoffs = sum(1 for k in self._list(STATE_PREFIX + "/runs/") if "/backoff/" in k)
        return {
            "ok": not problems,
            "problems": problems,
            "runs": len(run_ids),
            "notifications": sum(notes.values()),
            "rows": sum(rows.values()),
            "expected_rows": sum(expected.values()),
            "objects": len(listed),
            "bytes": sum(size for _, size in counted.values()),
            "steps": steps,
            "windows": windows,
            "hops": steps - windows,
            "backoffs": backoffs,
            "sampled_partitions": [f"{b}/{d}" for b, d in sample],
        }

    def _json(self, key: str) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads(
                self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            )
        except self.s3.exceptions.NoSuchKey:
            return {}
        return doc

    def _list(self, prefix: str) -> list[str]:
        out: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            out.extend(item["Key"] for item in page.get("Contents", []))
        return out

    def clean(self) -> None:
        """Empty the bucket: every scenario starts from nothing (the queues are empty by now)."""
        keys = self._list("")
        for n in range(0, len(keys), 1000):
            self.s3.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[n : n + 1000]], "Quiet": True},
            )


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    loads = workloads(args.smoke, args.days, args.brands)
    names = args.only or list(loads)
    out = [Scenario(loads[name], n, args.latency) for name in names for n in args.workers]
    if args.rate_limit:
        out += [
            Scenario(loads[name], args.rate_workers, args.latency, args.rate_limit)
            for name in names
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (the test suite)")
    parser.add_argument("--out", type=Path, help="write scale.json, the section and the plot here")
    parser.add_argument("--only", action="append", choices=("backfill", "nightly"))
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

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    plan = scenarios(args)
    brands = {
        b: w.locations
        for w in workloads(args.smoke, args.days, args.brands).values()
        for b in w.brands
    }
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        },
        "source": source_state(),
        "config": {
            "smoke": args.smoke,
            "latency_s": args.latency,
            "rate_limit": args.rate_limit,
            "page_size": PAGE_SIZE,
            "window_days": 1,
            "memory_mb": MEMORY_MB,
            "workloads": {
                n: {**asdict(w), "pages": w.pages, "brand_days": w.brand_days}
                for n, w in workloads(args.smoke, args.days, args.brands).items()
            },
        },
        "scenarios": [],
    }
    # The data model's row counts, before any timing (cached on disk after the first run).
    for w in workloads(args.smoke, args.days, args.brands).values():
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


def source_state() -> dict[str, Any]:
    """Which code was measured (bench/run.py's record of it)."""
    from bench.run import source_state as of_run  # noqa: PLC0415

    return of_run()


def write_outputs(results: dict[str, Any], json_path: Path, svg_path: Path, md_path: Path) -> None:
    """scale.json, the plot and the page's scale section (costs and targets derived here)."""
    results["cost"] = scale_report.costs(results)
    results["targets"] = scale_report.targets(results)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
    svg_path.write_text(scale_report.svg(results))
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

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
import platform
import re
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXPORTER_DIR = ROOT / "functions" / "exporter"
if __package__ in (None, ""):  # run as `python bench/run.py`
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(EXPORTER_DIR))

from bench import parquet, report  # noqa: E402
from bench.procs import Measured, Processes  # noqa: E402
from local.resources import clients, provision  # noqa: E402

PY = sys.executable
REGION = "us-east-1"
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret"
PAGE_SIZE = 50
WINDOW_DAYS = 5
BUCKET = "wifi-export-bench"
DATA_PREFIX, STATE_PREFIX = "wifi/metrics", "wifi/_exports"
MODES = ("bare", "raw-gzip", "exporter")
# Also measured pinned to one core (PINNED_CPU), as Lambda at 1,769 MB runs them: one vCPU.
PINNED_CPU = 0
WITH_SELECTION = (*MODES, "selection")
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


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops every process


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu_model": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def source_state() -> dict[str, Any]:
    """Which exporter code was measured: HEAD, uncommitted changes, a hash of the sources."""
    import hashlib  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
            )
        except OSError:
            return ""
        return done.stdout.strip()

    digest = hashlib.sha256()
    for path in sorted(EXPORTER_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return {
        "git_head": git("rev-parse", "HEAD"),
        "uncommitted": git("status", "--porcelain", "--", "functions", "local").splitlines(),
        "exporter_sha256": digest.hexdigest(),
    }


def function_memory_mb() -> int:
    """`FunctionMemory`'s default in template.yaml (CloudFormation tags defeat yaml.safe_load)."""
    text = (ROOT / "template.yaml").read_text()
    found = re.search(r"^  FunctionMemory:\n(?:    .*\n)*?    Default: (\d+)", text, re.M)
    if not found:
        raise RuntimeError("template.yaml: no FunctionMemory parameter with a Default")
    return int(found.group(1))


def median(values: list[float]) -> float:
    return float(statistics.median(values))


class Bench:
    def __init__(self, procs: Processes, work: Path, smoke: bool) -> None:
        self.procs = procs
        self.work = work
        self.smoke = smoke
        self.env: dict[str, str] = {}
        self.resources: dict[str, str] = {}
        self.api_url = ""
        self.serial = 0

    # -- servers and resources -----------------------------------------------------

    def start_servers(self, brands: str) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        base.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_SESSION_TOKEN="testing",
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            PYTHONUNBUFFERED="1",
        )
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
        _, moto_url = self.procs.server(
            lambda port: [PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=base,
            cwd=ROOT,
            name="moto",
            ready_path="/moto-api/",
        )
        self.env = {**base, "AWS_ENDPOINT_URL": moto_url}

    def create_resources(self) -> None:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            os.environ.setdefault(name, "testing")
        make = clients(REGION, self.env["AWS_ENDPOINT_URL"])
        deployment = provision(make, name=BUCKET, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        self.s3 = make("s3")
        self.bucket = deployment.bucket
        self.resources = {"queue_url": deployment.queue_url, "inbox_url": deployment.inbox_url}
        # The exporter's deployment environment (as tests/integration/conftest.py wires it).
        self.env.update(
            deployment.environment(self.api_url, DATA_PREFIX, STATE_PREFIX),
            TIME_BASIS="utc",
            WINDOW_DAYS=str(WINDOW_DAYS),
            TIME_SAFETY_MARGIN_MS="5000",
            POWERTOOLS_TRACE_DISABLED="true",
            POWERTOOLS_METRICS_NAMESPACE="WifiExport",
            POWERTOOLS_SERVICE_NAME="wifi-export",
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
                    "bucket": self.bucket,
                    "state_prefix": STATE_PREFIX,
                    **self.resources,
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
        out.update(
            wall_s=wall,
            process_wall_s=m.wall_s,
            cpu_s=m.cpu_s,
            user_s=m.user_s,
            sys_s=m.sys_s,
            rss_mb=m.maxrss_mb,
        )
        print(
            f"  {w.name:9} {mode + (' 1cpu' if pinned else ''):13}  wall {wall:7.2f} s  "
            f"cpu {m.cpu_s:7.2f} s  rss {m.maxrss_mb:6.1f} MB",
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
        one_core = tuple(m for m in MODES if m in w.modes)
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
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            lines = gzip.decompress(body)
            exporter_bytes += len(body)
            raw_bytes += len(lines)
            rows += lines.count(b"\n")
            stdlib_bytes += len(gzip.compress(lines, compresslevel=6))
        per_row = exporter_bytes / rows if rows else 0.0
        stdlib_per_row = stdlib_bytes / rows if rows else 0.0
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
        print(
            f"cold start: import boto3 {out['boto3']['import_s'] * 1000:.0f} ms, "
            f"import app {out['app']['import_s'] * 1000:.0f} ms",
            flush=True,
        )
        return out


def summarize(w: Workload, runs: list[dict[str, Any]]) -> dict[str, Any]:
    wall = median([r["wall_s"] for r in runs])
    cpu = median([r["cpu_s"] for r in runs])
    out: dict[str, Any] = {
        "runs": [
            {
                k: r[k]
                for k in ("wall_s", "work_s", "cpu_s", "user_s", "sys_s", "rss_mb", "vmhwm_mb")
            }
            for r in runs
        ],
        "wall_s": wall,
        "work_s": median([r["work_s"] for r in runs]),
        "cpu_s": cpu,
        "rss_mb": median([r["rss_mb"] for r in runs]),
        "vmhwm_mb": median([r["vmhwm_mb"] or 0.0 for r in runs]),
        "location_hours_per_cpu_s": w.location_hours / cpu if cpu else 0.0,
        "pages": runs[-1]["pages"],
        "api_calls": runs[-1]["api_calls"],
        "api_bytes_read": runs[-1].get("raw_bytes"),
        "bytes_written": runs[-1].get("bytes", 0),
        "objects_written": runs[-1].get("objects", 0),
        "s3_requests": runs[-1].get("s3_requests", 0),
    }
    last = runs[-1]
    if "rows" in last:  # the exporter: what its manifest says
        out.update(
            {
                k: last[k]
                for k in (
                    "rows",
                    "retries",
                    "dropped_rows",
                    "windows",
                    "steps",
                    "invocations",
                    "failed_records",
                    "crashed_invocations",
                    "status",
                    "notification",
                    "s3_by_operation",
                    "s3_http_attempts",
                    "aws_calls",
                    "data_keys",
                )
            }
        )
        out["all_runs_succeeded"] = all(r["status"] == "succeeded" for r in runs)
    return out


def add_ratios(wl: dict[str, Any]) -> None:
    for group in ("modes", "pinned"):
        _ratios(wl.get(group) or {})


def _ratios(modes: dict[str, Any]) -> None:
    for mode, fig in modes.items():
        for base in ("bare", "raw-gzip", "exporter"):
            if base in modes and base != mode:
                ref = modes[base]
                key = base.replace("-", "_")
                fig[f"wall_vs_{key}"] = fig["wall_s"] / ref["wall_s"]
                fig[f"cpu_vs_{key}"] = fig["cpu_s"] / ref["cpu_s"]
                fig[f"rss_vs_{key}"] = fig["rss_mb"] / ref["rss_mb"]


def target(name: str, figure: float | None, limit: float | None, text: str) -> dict[str, Any]:
    met = None if figure is None or limit is None else figure <= limit
    return {"name": name, "figure": figure, "limit": limit, "met": met, "text": text}


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    by = {w["name"]: w for w in res["workloads"]}
    small, big, month = by.get("2000x5d"), by.get("8000x5d"), by.get("2000x30d")

    def exp(w: dict[str, Any] | None, key: str) -> float | None:
        return None if w is None else float(w["modes"]["exporter"][key])

    def one_core(w: dict[str, Any] | None) -> float | None:
        pinned = None if w is None else w.get("pinned", {}).get("exporter")
        return None if pinned is None else float(pinned["wall_vs_raw_gzip"])

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or not b else a / b

    out = [
        target(
            "exporter wall <= 1.0 x raw-gzip wall (2,000 locations)",
            None if small is None else small["modes"]["exporter"]["wall_vs_raw_gzip"],
            1.0,
            "x raw-gzip",
        ),
        target(
            "exporter wall <= 1.0 x raw-gzip wall (8,000 locations)",
            None if big is None else big["modes"]["exporter"]["wall_vs_raw_gzip"],
            1.0,
            "x raw-gzip",
        ),
        target(
            "one core: exporter wall <= 1.0 x raw-gzip wall (2,000 locations)",
            one_core(small),
            1.0,
            "x raw-gzip",
        ),
        target(
            "one core: exporter wall <= 1.0 x raw-gzip wall (8,000 locations)",
            one_core(big),
            1.0,
            "x raw-gzip",
        ),
        target(
            "selection (2,000 ids, 40 batches) wall <= 1.2 x whole-brand exporter wall",
            None
            if small is None or "selection" not in small["modes"]
            else small["modes"]["selection"]["wall_vs_exporter"],
            1.2,
            "x exporter",
        ),
        target("peak RSS <= 150 MB (2,000 locations)", exp(small, "rss_mb"), 150.0, "MB"),
        target(
            "RSS(8,000) <= 1.15 x RSS(2,000)",
            ratio(exp(big, "rss_mb"), exp(small, "rss_mb")),
            1.15,
            "x",
        ),
        target(
            "gzipped bytes/row <= 1.15 x stdlib gzip-6 bytes/row",
            res["output_size"]["ratio"] if res.get("output_size") else None,
            1.15,
            "x",
        ),
        target(
            "CPU(30 days) <= 6.3 x CPU(5 days) (2,000 locations)",
            ratio(exp(month, "cpu_s"), exp(small, "cpu_s")),
            6.3,
            "x",
        ),
    ]
    api = res["api"]
    out.append(
        {
            "name": "API calls = pages + retries; pages = ceil(locations/50) x windows",
            "figure": None,
            "limit": None,
            "met": all(c["ok"] for c in api["checks"]),
            "text": "; ".join(
                f"{c['workload']}: {c['api_calls']} = {c['pages']} + {c['retries']}, "
                f"pages {c['pages']}/{c['expected_pages']}"
                for c in api["checks"]
            ),
        }
    )
    out.append(
        target("import app <= 1.3 x import boto3", res["cold_start"]["ratio"], 1.3, "x boto3")
    )
    return out


def api_checks(res: dict[str, Any]) -> dict[str, Any]:
    checks = []
    for w in res["workloads"]:
        e = w["modes"]["exporter"]
        ok = (
            e["api_calls"] == e["pages"] + e["retries"]
            and e["pages"] == w["expected_pages"]
            and all(m["pages"] == w["expected_pages"] for m in w["modes"].values())
        )
        checks.append(
            {
                "workload": w["name"],
                "api_calls": e["api_calls"],
                "pages": e["pages"],
                "retries": e["retries"],
                "expected_pages": w["expected_pages"],
                "baseline_pages": {m: f["pages"] for m, f in w["modes"].items()},
                "ok": ok,
            }
        )
    return {"checks": checks}


def cost(res: dict[str, Any], memory_mb: int) -> dict[str, Any]:
    out: dict[str, Any] = {"memory_mb": memory_mb, "workloads": {}}
    for w in res["workloads"]:
        e = w["modes"]["exporter"]
        per_million = 1e6 / w["location_hours"]
        out["workloads"][w["name"]] = {
            "lambda_gb_s_per_million_location_hours": memory_mb / 1024 * e["wall_s"] * per_million,
            "s3_requests_per_million_location_hours": e["s3_requests"] * per_million,
            "s3_requests": e["s3_requests"],
            "s3_by_operation": e["s3_by_operation"],
        }
    return out


def expected_row_count(w: dict[str, Any]) -> int:
    from local.fake_analytiks import expected_rows  # noqa: PLC0415

    return sum(
        1
        for _ in expected_rows(
            w["brand"], w["locations"], f"{w['start']}T00:00:00.000Z", f"{w['end']}T23:59:59.999Z"
        )
    )


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

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    started = time.perf_counter()
    source = source_state()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_dir:
        work = Path(tmp_dir)
        procs = Processes(work)
        try:
            bench = Bench(procs, work, args.smoke)
            bench.start_servers(brands)
            bench.create_resources()
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

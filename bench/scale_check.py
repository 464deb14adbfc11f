"""What `make bench-scale` checks in S3 after each run, outside its timing.

* `expected_count(brand, locations, day)`: rows of one brand-day by the fake API's
  data model (one per location and hour with any non-zero metric), computed fast
  from the model's own hash functions; the smoke test holds it equal to
  `local.fake_analytiks.expected_rows`.
* `count_rows(keys)`: every table object downloaded and decompressed, its lines
  counted (a process pool of the machine's cores; run between measurements).
* `check_partition(...)`: one partition row by row against `expected_rows`:
  each (location, hour) once, with the model's values.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import random
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.contract import METRIC_COLUMN, parse_data_key
from local.fake_analytiks import data as model
from local.fake_analytiks import expected_rows

if TYPE_CHECKING:
    from bench.scale import Bench
    from bench.scale_plan import Scenario

from bench.stack import DATA_PREFIX, STATE_PREFIX


def expected_count(brand: int, locations: int, day: date) -> int:
    """Rows the fake API's v3 answers hold for one UTC day of a brand."""
    start = datetime(day.year, day.month, day.day)
    minutes = model.grid_minutes(start, start + timedelta(hours=23, minutes=59), 60)
    metrics = [m for m in model.METRICS if m != "allVisits"]  # visits + bounces: adds nothing
    mask, gold, mul1, mul2 = model._M64, model._GOLD, model._MUL1, model._MUL2
    rows = 0
    for loc in model.location_ids(brand, locations):
        if model.is_dark(loc):
            continue
        closed = model._base(loc, "#closed")
        bases = [model._base(loc, m) for m in metrics]
        for minute in minutes:
            x = ((closed ^ (minute * gold)) * mul1) & mask
            x = ((x ^ (x >> 29)) * mul2) & mask
            if (x ^ (x >> 32)) % 100 < model.CLOSED_PERCENT:
                continue
            for base in bases:  # a row if any metric is non-zero (usually the first)
                y = ((base ^ (minute * gold)) * mul1) & mask
                y = ((y ^ (y >> 29)) * mul2) & mask
                if (y ^ (y >> 32)) % 100 >= model.ZERO_PERCENT:
                    rows += 1
                    break
    return rows


def _model_digest() -> str:
    return hashlib.sha256(Path(model.__file__).read_bytes()).hexdigest()[:16]


def expected_counts(
    brand_days: Iterable[tuple[int, int, date]], workers: int = 0
) -> dict[tuple[int, date], int]:
    """`expected_count` of many brand-days, cached on disk per version of the data model."""
    cache_path = Path(tempfile.gettempdir()) / f"wifi-export-bench-expected-{_model_digest()}.json"
    cache: dict[str, int] = {}
    if cache_path.exists():
        try:
            cache = json.loads(cache_path.read_text())
        except ValueError:
            cache = {}
    wanted = list(brand_days)
    todo = [(b, n, d) for b, n, d in wanted if f"{b}:{n}:{d}" not in cache]
    if todo:
        with _pool(workers) as pool:
            for (b, n, d), count in zip(todo, pool.map(_count_one, todo, chunksize=8), strict=True):
                cache[f"{b}:{n}:{d}"] = count
        tmp = cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache))
        tmp.replace(cache_path)
    return {(b, d): cache[f"{b}:{n}:{d}"] for b, n, d in wanted}


def _count_one(item: tuple[int, int, date]) -> int:
    return expected_count(*item)


def _pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the benchmark's process runs server threads (the fake API).
    return ProcessPoolExecutor(workers or os.cpu_count() or 1, mp_context=get_context("spawn"))


@functools.cache
def _s3() -> Any:
    import boto3  # noqa: PLC0415

    return boto3.session.Session().client("s3")


def _lines(bucket: str, key: str) -> tuple[str, int, int]:
    body = _s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    inflate = zlib.decompressobj(31)
    lines = 0
    for start in range(0, len(body), 1 << 20):
        lines += inflate.decompress(body[start : start + (1 << 20)]).count(b"\n")
    lines += inflate.flush().count(b"\n")
    return key, lines, len(body)


def count_rows(bucket: str, keys: Sequence[str], workers: int = 0) -> dict[str, tuple[int, int]]:
    """key -> (lines, compressed bytes) of every object, read back from S3."""
    with _pool(workers) as pool:
        done = pool.map(_lines, [bucket] * len(keys), keys, chunksize=4)
        return {key: (lines, size) for key, lines, size in done}


def check_partition(
    s3: Any, bucket: str, keys: Sequence[str], *, brand: int, locations: int, day: date
) -> list[str]:
    """One brand-day's objects row by row against the data model; problems found."""
    want = {
        (row.location_id, row.ts): row.values
        for row in expected_rows(brand, locations, f"{day}T00:00:00.000Z", f"{day}T23:59:59.999Z")
    }
    seen: set[tuple[int, str]] = set()
    problems: list[str] = []
    for key in keys:
        body = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        for line in body.splitlines():
            row = json.loads(line)
            where = (row["location_id"], row["ts"])
            if where in seen:
                problems.append(f"{key}: row {where} twice")
            seen.add(where)
            values = {m: row[c] for m, c in METRIC_COLUMN.items() if row.get(c)}
            if want.get(where) != values:
                problems.append(f"{key}: row {where} is {values}, expected {want.get(where)}")
    missing = set(want) - seen
    if missing:
        problems.append(f"brand {brand} {day}: {len(missing)} rows missing, e.g. {min(missing)}")
    return problems[:20]


def verify(bench: Bench, sc: Scenario, run_ids: list[str], notes: Counter[str]) -> dict[str, Any]:
    """Exactly once, from S3: every object counted, a sample row by row; one
    notification, a succeeded status and manifest per run."""
    w = sc.workload
    time.sleep(1)
    bench.read_inbox(notes, wait_s=1)  # a late duplicate would show up here
    problems: list[str] = []
    if sorted(notes) != sorted(run_ids) or any(n != 1 for n in notes.values()):
        problems.append(f"notifications per run: {dict(notes)}")
    bad = {r: s for r, s in bench.statuses.items() if s != "succeeded"}
    if bad:
        problems.append(f"runs not succeeded: {bad}")
    keys_by_brand: dict[int, list[str]] = {}
    steps = windows = 0
    for run_id in run_ids:
        root = f"{STATE_PREFIX}/runs/{run_id}/"
        status = read_json(bench.s3, bench.bucket, root + "status.json")
        manifest = read_json(bench.s3, bench.bucket, root + "manifest.json")
        if (status.get("state"), status.get("windowsDone")) != (
            "succeeded",
            manifest.get("windows"),
        ):
            problems.append(f"{run_id}: status {status.get('state')} {status.get('windowsDone')}")
        brand = int(manifest["brandId"])
        keys_by_brand[brand] = sorted(k for p in manifest["partitions"] for k in p["keys"])
        steps += int(manifest["steps"])
        windows += int(manifest["windows"])
    listed = list_keys(bench.s3, bench.bucket, DATA_PREFIX + "/")
    manifested = sorted(k for keys in keys_by_brand.values() for k in keys)
    if sorted(listed) != manifested:
        problems.append(
            f"table objects {len(listed)} != manifests' {len(manifested)} "
            "(foreign, duplicate or missing objects)"
        )
    counted = count_rows(bench.bucket, listed)
    rows: Counter[tuple[int, date]] = Counter()
    for key, (lines, _) in counted.items():
        part = parse_data_key(key)  # the layout of docs/contracts.md, or an AssertionError
        if part.basis != "utc":  # the scale runs are UTC runs
            problems.append(f"{key}: a {part.basis} partition")
        rows[part.brand_id, date.fromisoformat(part.dt)] += lines
    expected = expected_counts((b, w.locations, d) for b in w.brands for d in w.day_list())
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
        problems += check_partition(
            bench.s3, bench.bucket, keys, brand=brand, locations=w.locations, day=day
        )
    backoffs = sum(
        1 for k in list_keys(bench.s3, bench.bucket, STATE_PREFIX + "/runs/") if "/backoff/" in k
    )
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


def read_json(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return {}
    return doc


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend(item["Key"] for item in page.get("Contents", []))
    return out

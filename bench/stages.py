"""Where the exporter's CPU goes, stage by stage, against the raw-gzip floor's own work.

    python -m bench.stages                       # 2,000 locations x 5 days, 5 rounds
    python -m bench.stages --locations 50 --days 1 --rounds 1   # smoke: seconds

The v3 pages of one window are fetched once from the fake API (its own process),
then each stage runs in this process on the same pages, one thread, its CPU
(`time.process_time`) taken per round: the median and the range over the rounds,
stages interleaved so a busy machine weighs on all alike. What `make bench`
measures whole (docs/performance.md, "CPU at the floor"), this splits: the
stdlib gzip level 6 of the raw pages is raw-gzip's compression; the other rows
are the exporter's data path (parse, shape, join, deflate, Parquet twin). The
fixed costs (imports, clients, S3 and SQS calls, threads) are not here.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/stages.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.child import walk
from bench.common import PY, ROOT
from bench.procs import Processes
from bench.stack import base_env
from exporter import json_codec
from exporter.gzip_writer import GzipWriter
from exporter.parquet_table import encode
from exporter.planning import request_range, split_windows
from exporter.rows import RowShaper, ShapedPage

BRAND, CLIENT = 9001, ("stages-client", "stages-secret")
FIRST = date(2023, 6, 1)


def fetch_pages(locations: int, days: int, work: Path) -> list[bytes]:
    """The raw v3 pages of one window of `days` days, from the fake API."""
    procs = Processes(work)
    try:
        _, url = procs.server(
            lambda port: [
                PY, "-m", "local.fake_analytiks", "--port", str(port),
                "--brands", f"{BRAND}:{locations}", "--page-size", "50",
                "--client", f"{CLIENT[0]}:{CLIENT[1]}",
            ],
            env=base_env(), cwd=ROOT, name="fake-analytiks", ready_path="/health",
        )  # fmt: skip
        window = request_range(next(iter(split_windows(FIRST, _last(days), days))), "utc")
        spec = {
            "api_url": url,
            "token_url": url + "/oauth/token",
            "client_id": CLIENT[0],
            "client_secret": CLIENT[1],
            "brand": BRAND,
            "windows": [window],
        }
        bodies: list[bytes] = []
        walk(spec, lambda _window, _page, body: bodies.append(body))
        return bodies
    finally:
        procs.close()


def _last(days: int) -> date:
    return FIRST + timedelta(days=days - 1)


def stages(bodies: list[bytes], days: int) -> dict[str, Callable[[], Any]]:
    """Each stage as a call; later stages start from earlier stages' output."""
    window = [FIRST + timedelta(days=n) for n in range(days)]
    datas = [json_codec.loads(body)["data"] for body in bodies]
    shaper = RowShaper("20230601T000000000Z-b9001-0123abcd", "utc", window)
    shaped = [shaper.shape(data) for data in datas]
    joined = _join(shaped)
    packed = {dt: _deflate(chunks) for dt, chunks in joined.items()}
    return {
        "raw-gzip: stdlib gzip 6 of the raw pages": lambda: [gzip.compress(b, 6) for b in bodies],
        "exporter: orjson parse": lambda: [json_codec.loads(body) for body in bodies],
        "exporter: shape rows": lambda: [shaper.shape(data) for data in datas],
        "exporter: join lines": lambda: _join(shaped),
        "exporter: deflate (GzipWriter)": lambda: [_deflate(c) for c in joined.values()],
        "exporter: Parquet twin (encode)": lambda: [encode([body]) for body in packed.values()],
    }


def _join(shaped: list[ShapedPage]) -> dict[str, list[tuple[bytes, int]]]:
    out: dict[str, list[tuple[bytes, int]]] = {}
    for page in shaped:
        for dt, lines in page.lines.items():
            out.setdefault(dt, []).append((b"".join(lines), page.rows[dt]))
    return out


def _deflate(chunks: list[tuple[bytes, int]]) -> bytes:
    writer = GzipWriter()  # no executor: compressed on this thread, measured here
    for data, rows in chunks:
        writer.write(data, rows)
    sink, _ = writer.finish()
    with sink:
        return sink.read()


def measure(calls: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    spent: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.process_time()
            call()
            spent[name].append(time.process_time() - started)
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__)
    parser.add_argument("--locations", type=int, default=2000)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        bodies = fetch_pages(args.locations, args.days, Path(tmp))
    spent = measure(stages(bodies, args.days), args.rounds)
    size = sum(map(len, bodies)) / 1e6
    print(f"{args.locations} locations x {args.days} days: {len(bodies)} pages, {size:.1f} MB")
    print(f"CPU s of each stage, median (min-max) of {args.rounds} rounds")
    for name, values in spent.items():
        low, high = min(values), max(values)
        print(f"  {name:42} {statistics.median(values):6.3f} ({low:.3f}-{high:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory of the worst case a page cap allows (docs/performance.md, "Page cap
and memory"): a chain of pages of one size walked with read-ahead, as a step does.

    python -m bench.page_memory --mib 4 8 16 [--pages 3]

For each size, a child process reads a v3 page of that size from a file, then
walks `--pages` of them with `pages.read_ahead` (each page a fresh download buffer,
parsed with the exporter's JSON codec) and shapes every page into gzip parts, like
`run.walk`. The child reports its resident set before the walk and its peak
(VmHWM): the walk's own peak is their difference. Pages are dense (every metric,
hourly buckets over five days, zero-filled as v4 answers): the most Python objects
per byte of JSON the API's shape allows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def page(size: int, shape: str = "dense") -> bytes:
    """A v3 page of at least `size` bytes, cursor null: location records (`dense`),
    or the most objects a byte of JSON can make (`tiny`: empty objects, refused at
    shaping, but parsed first)."""
    if shape == "tiny":
        return b'{"cursor":null,"data":[' + b",".join([b"{}"] * (size // 3 + 1)) + b"]}"
    from exporter.schema import METRIC_COLUMNS  # noqa: PLC0415

    first = date(2023, 6, 1)
    keys = [f"{first + timedelta(days=d)}T{h:02d}:00:00.000Z" for d in range(5) for h in range(24)]
    template = {
        api: {k: (n * 7 + i) % 1000 for n, k in enumerate(keys)}
        for i, (api, _) in enumerate(METRIC_COLUMNS)
    }
    one = len(orjson.dumps({"locationId": 10**9, **template}))
    records = [{"locationId": 10**9 + n, **template} for n in range(size // one + 1)]
    return orjson.dumps({"cursor": None, "data": records})


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def child(path: str, pages: int) -> dict[str, Any]:
    from exporter import json_codec  # noqa: PLC0415
    from exporter.gzip_writer import GzipWriter  # noqa: PLC0415
    from exporter.pages import read_ahead  # noqa: PLC0415
    from exporter.rows import RowShaper  # noqa: PLC0415

    raw = Path(path).read_bytes()
    shaper = RowShaper(
        "20230701T033000000Z-b1234-9f2c41d0",
        "utc",
        [date(2023, 6, 1) + timedelta(days=d) for d in range(5)],
    )
    writers: dict[str, GzipWriter] = {}
    before = _rss_kib("VmRSS")

    def fetch(cursor: str | None, follow_on: bool) -> tuple[list[Any], str | None]:
        body = bytearray(raw)  # the download buffer of this page
        payload = json_codec.loads(body)
        del body
        n = 0 if cursor is None else int(cursor)
        return payload["data"], str(n + 1) if n + 1 < pages else None

    rows = 0
    for records, _cursor in read_ahead(fetch, None, lambda: True):
        if records and records[0] == {}:
            time.sleep(0.5)  # `tiny`: as long as shaping a page would take, then the next
            continue
        shaped = shaper.shape(records)
        for dt, lines in shaped.lines.items():
            writer = writers.setdefault(dt, GzipWriter())
            writer.write(b"".join(lines), shaped.rows[dt])
            rows += shaped.rows[dt]
        del records, shaped
    peak = _rss_kib("VmHWM")
    return {
        "page_bytes": len(raw),
        "pages": pages,
        "rows": rows,
        "before_mib": before / 1024,
        "peak_mib": peak / 1024,
        "walk_peak_mib": (peak - before) / 1024,
    }


def measure(mib: float, pages: int, shape: str = "dense") -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(page(int(mib * MIB), shape))
        f.flush()
        out = subprocess.run(
            [sys.executable, "-m", "bench.page_memory", "--child", f.name, "--pages", str(pages)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            env={"PYTHONPATH": f"{ROOT / 'functions' / 'exporter'}:{ROOT}", "PATH": ""},
        )
    result: dict[str, Any] = json.loads(out.stdout)
    result["factor"] = result["walk_peak_mib"] * MIB / result["page_bytes"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=float, nargs="*", default=[4.0])
    parser.add_argument("--pages", type=int, default=3)
    parser.add_argument("--shape", choices=("dense", "tiny"), default="dense")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.pages)))
        return
    for mib in args.mib:
        r = measure(mib, args.pages, args.shape)
        print(
            f"{args.shape} page {r['page_bytes'] / MIB:6.1f} MiB x {r['pages']}: "
            f"before {r['before_mib']:.0f} "
            f"MiB, peak {r['peak_mib']:.0f} MiB, walk {r['walk_peak_mib']:.0f} MiB "
            f"({r['factor']:.1f}x a page), {r['rows']:,} rows"
        )


if __name__ == "__main__":
    main()

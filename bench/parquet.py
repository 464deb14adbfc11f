"""The Parquet table's cost per brand-day (`make bench`, "Parquet table" section).

A brand-day in our row schema (2,000 stores x 24 h, the fake API's deterministic
data, one `extra` metric) is written the way a commit sees it, as gzip JSON Lines
objects, and rebuilt into one Parquet object by the exporter's own code
(exporter/parquet_table.encode). Measured: the CPU of that rebuild (what a
commit adds per partition), next to the CPU of gzipping the same rows (what the
JSON table costs to write); the bytes of both; and the bytes a column query
reads from the Parquet object (`SELECT location_id, sum(visits)`: two column
chunks, from the file's metadata).

    python -m bench.parquet [--smoke]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/parquet.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: F401 -- puts functions/exporter on sys.path
from exporter import parquet_table
from exporter.gzip_writer import GZIP_LEVEL
from exporter.schema import METRIC_COLUMNS
from local.fake_analytiks import expected_rows, reference_number

BRAND = 9001
DAY = "2023-06-01"
RUN_ID = "20230602T033000000Z-b9001-0123abcd"
OBJECTS = 2  # a brand-day arrives as a few objects (windows x invocations)
_COLUMN = dict(METRIC_COLUMNS)


def brand_day_lines(locations: int) -> list[bytes]:
    """The JSON Lines of one brand-day, shaped as exporter/rows.py writes them."""
    lines = []
    rows = expected_rows(
        BRAND,
        locations,
        f"{DAY}T00:00:00.000Z",
        f"{DAY}T23:59:59.999Z",
        extra_metrics=("footfallScore",),
    )
    for row in rows:
        line: dict[str, Any] = {
            "location_id": row.location_id,
            "reference_number": reference_number(row.location_id),
            "ts": row.ts.replace("T", " ")[:19],
            "time_basis": "utc",
        }
        extra = {}
        for name, value in row.values.items():
            if name in _COLUMN:
                line[_COLUMN[name]] = value
            else:
                extra[name] = value
        if extra:
            line["extra"] = extra
        line["run_id"] = RUN_ID
        lines.append(json.dumps(line, separators=(",", ":")).encode() + b"\n")
    return lines


def _cpu(function: Any, reps: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(reps):
        started = time.process_time()
        result = function()
        times.append(time.process_time() - started)
    return statistics.median(times), result


def column_query_bytes(body: bytes, columns: tuple[str, ...]) -> int:
    """Compressed bytes of `columns`' chunks: what a query naming only them reads."""
    import duckdb  # noqa: PLC0415 -- a dev dependency, not the function's

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "part.parquet"
        path.write_bytes(body)
        found = duckdb.execute(
            "SELECT sum(total_compressed_size) FROM parquet_metadata(?) "
            "WHERE path_in_schema IN (SELECT unnest(?))",
            [str(path), list(columns)],
        ).fetchone()
    return int(found[0]) if found and found[0] is not None else 0


def measure(smoke: bool = False, reps: int | None = None) -> dict[str, Any]:
    locations = 50 if smoke else 2_000
    reps = reps or (1 if smoke else 5)
    lines = brand_day_lines(locations)
    cut = len(lines) // OBJECTS
    parts = [b"".join(lines[:cut]), b"".join(lines[cut:])]
    gzip_cpu, objects = _cpu(
        lambda: [gzip.compress(p, compresslevel=GZIP_LEVEL, mtime=0) for p in parts], reps
    )
    parquet_table.encode(objects)  # the library's first import is not a commit's cost
    parquet_cpu, (body, rows) = _cpu(lambda: parquet_table.encode(objects), reps)
    assert body is not None and rows == len(lines)
    json_bytes = sum(len(o) for o in objects)
    query = column_query_bytes(body, ("location_id", "visits"))
    return {
        "locations": locations,
        "rows": rows,
        "json_objects": len(objects),
        "json_gzip_bytes": json_bytes,
        "json_gzip_cpu_s": round(gzip_cpu, 4),
        "parquet_bytes": len(body),
        "parquet_commit_cpu_s": round(parquet_cpu, 4),
        "parquet_vs_json_bytes": round(len(body) / json_bytes, 3),
        "column_query_bytes": query,
        "column_query_share_of_json": round(query / json_bytes, 4),
        "compression": parquet_table.COMPRESSION,
        "repetitions": reps,
    }


def section(res: dict[str, Any]) -> str:
    """The "Parquet table" section of docs/performance.md."""
    return "\n".join(
        [
            "## Parquet table",
            "",
            f"One brand-day ({res['locations']:,} locations x 24 h, {res['rows']:,} rows, "
            f"median of {res['repetitions']}; bench/parquet.py): the JSON table's "
            f"{res['json_objects']} gzip objects are {res['json_gzip_bytes']:,} bytes "
            f"({res['json_gzip_cpu_s'] * 1000:.0f} ms CPU to gzip); the Parquet object "
            f"({res['compression']}) is {res['parquet_bytes']:,} bytes "
            f"({res['parquet_vs_json_bytes']:.2f} of the JSON), rebuilt in "
            f"{res['parquet_commit_cpu_s'] * 1000:.0f} ms CPU: what a commit adds per "
            f"partition. A query of `location_id` and `sum(visits)` reads "
            f"{res['column_query_bytes']:,} bytes of it, "
            f"{res['column_query_share_of_json'] * 100:.1f} % of what it reads from the "
            "JSON table (all of every gzip object).",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.parquet", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="50 locations, 1 repetition")
    args = parser.parse_args(argv)
    res = measure(args.smoke)
    print(json.dumps(res, indent=2))
    print(section(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

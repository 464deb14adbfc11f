"""`bench/run.py --smoke`: the benchmark harness works end to end (not its timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.run import SELECTION_BRAND_OFFSET
from local.fake_analytiks import expected_rows

ROOT = Path(__file__).resolve().parents[2]
MODE_FIGURES = (
    "wall_s",
    "work_s",
    "cpu_s",
    "rss_mb",
    "location_hours_per_cpu_s",
    "bytes_written",
    "objects_written",
    "api_calls",
    "pages",
    "runs",
)
TARGETS = (
    "exporter wall <= 1.0 x raw-gzip wall (2,000 locations)",
    "exporter wall <= 1.0 x raw-gzip wall (8,000 locations)",
    "one core: exporter wall <= 1.0 x raw-gzip wall (2,000 locations)",
    "one core: exporter wall <= 1.0 x raw-gzip wall (8,000 locations)",
    "selection (2,000 ids, 40 batches) wall <= 1.2 x whole-brand exporter wall",
    "exporter CPU <= 1.0 x raw-gzip CPU (2,000 locations)",
    "one core: exporter CPU <= 1.0 x raw-gzip CPU (2,000 locations)",
    "peak RSS <= 150 MB (2,000 locations)",
    "RSS(8,000) <= 1.15 x RSS(2,000)",
    "gzipped bytes/row <= 1.15 x stdlib gzip-6 bytes/row",
    "CPU(30 days) <= 6.3 x CPU(5 days) (2,000 locations)",
    "API calls = pages + retries; pages = ceil(locations/50) x windows",
    "import app <= 1.3 x import boto3",
)


def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # `make bench-scale`'s section of the page (bench/scale.py) survives `make bench`.
    scale = "<!-- scale:start -->\n## Scale\n\nkept as it is\n<!-- scale:end -->"
    out.mkdir()
    (out / "performance.md").write_text(f"# Performance\n\nold generated text\n\n{scale}\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "latest.json").read_text())
    markdown = (out / "performance.md").read_text()

    for name in ("platform", "cpu_model", "cores", "python", "date"):
        assert results["machine"][name], name
    assert results["duration_s"] > 0

    [workload] = results["workloads"]
    assert set(workload["modes"]) == {"bare", "raw-gzip", "exporter", "json-only", "selection"}
    # The same pinned to one core, as Lambda at 1,769 MB runs it.
    assert set(workload["pinned"]) == {"bare", "raw-gzip", "exporter", "json-only"}
    assert workload["pinned"]["exporter"]["status"] == "succeeded"
    assert workload["pinned"]["exporter"]["wall_vs_raw_gzip"] > 0
    for mode, figures in workload["modes"].items():
        for name in MODE_FIGURES:
            assert name in figures, (mode, name)
        assert figures["wall_s"] > 0 and figures["cpu_s"] > 0 and figures["rss_mb"] > 0
    for name in ("wall_vs_bare", "wall_vs_raw_gzip", "cpu_vs_bare", "cpu_vs_raw_gzip"):
        assert name in workload["modes"]["exporter"], name
    # CPU with its spread: the range of the repetitions, each run's ratio to raw-gzip,
    # and the harness's part (Lambda's event source mapping) taken out of it.
    exporter_cpu = workload["modes"]["exporter"]
    low, high = exporter_cpu["cpu_range_s"]
    assert 0 < low <= exporter_cpu["cpu_s"] <= high
    assert len(exporter_cpu["cpu_vs_raw_gzip_runs"]) == results["config"]["repetitions"]
    for run in exporter_cpu["runs"]:
        assert 0 < run["harness_cpu_s"] < run["process_cpu_s"]
        assert run["cpu_s"] == run["process_cpu_s"] - run["harness_cpu_s"]
    assert workload["modes"]["raw-gzip"]["harness_cpu_s"] == 0
    assert "CPU vs raw-gzip (per run)" in markdown and "harness CPU s" in markdown
    # Where a process's CPU goes besides its data path: page faults, context switches.
    for group in ("modes", "pinned"):
        for mode, figures in workload[group].items():
            assert figures["minor_faults"] > 0 and figures["context_switches"] > 0, mode
            assert figures["user_s"] > 0 and figures["sys_s"] >= 0, mode
            for run in figures["runs"]:
                assert run["minor_faults"] > 0 and run["context_switches"] > 0, mode
    assert "## Process costs" in markdown and "| minor faults |" in markdown
    [exporter_row] = [
        line
        for line in markdown.splitlines()
        if line.startswith(f"| {workload['name']} | 2 | exporter |")
    ]
    calls = sum(workload["modes"]["exporter"]["aws_calls"].values())
    assert exporter_row.endswith(f" | {calls:,} |"), exporter_row

    exporter = workload["modes"]["exporter"]
    assert exporter["status"] == "succeeded"
    assert exporter["notification"]["status"] == "succeeded"
    expected = sum(
        1
        for _ in expected_rows(
            workload["brand"],
            workload["locations"],
            f"{workload['start']}T00:00:00.000Z",
            f"{workload['end']}T23:59:59.999Z",
        )
    )
    assert exporter["rows"] == expected > 0
    assert exporter["api_calls"] == exporter["pages"] + exporter["retries"]
    assert exporter["pages"] == workload["expected_pages"]
    assert exporter["s3_requests"] > 0 and exporter["objects_written"] >= 1
    # As many locations chosen by id, of a twin brand (its own deterministic data).
    selection = workload["modes"]["selection"]
    assert selection["status"] == "succeeded"
    twin = workload["brand"] + SELECTION_BRAND_OFFSET
    assert selection["rows"] == sum(
        1
        for _ in expected_rows(
            twin,
            workload["locations"],
            f"{workload['start']}T00:00:00.000Z",
            f"{workload['end']}T23:59:59.999Z",
        )
    )
    assert selection["api_calls"] == selection["pages"] == workload["expected_pages"]
    assert selection["wall_vs_exporter"] > 0

    # The exporter without its Parquet twin: the same rows into a table of its own,
    # and no Parquet object written (the exporter writes one more per day).
    json_only = workload["modes"]["json-only"]
    assert json_only["status"] == "succeeded" and json_only["rows"] == expected
    assert json_only["objects_written"] == exporter["objects_written"]
    parquet_puts = workload["days"]  # one Parquet object per day rebuilt
    assert json_only["s3_by_operation"]["PutObject"] < exporter["s3_by_operation"]["PutObject"]
    assert "GetObject" not in json_only["s3_by_operation"] or (
        json_only["s3_by_operation"]["GetObject"]
        <= exporter["s3_by_operation"]["GetObject"] - parquet_puts
    )
    assert json_only["cpu_vs_raw_gzip"] > 0 and json_only["cpu_vs_exporter"] > 0
    assert workload["pinned"]["json-only"]["cpu_vs_raw_gzip"] > 0
    assert f"| {workload['name']} | json-only |" in markdown

    size = results["output_size"]
    assert size["rows"] == expected
    for name in ("exporter_bytes_per_row", "stdlib_gzip6_bytes_per_row", "ratio"):
        assert size[name] > 0, name
    cold = results["cold_start"]
    assert cold["boto3"]["import_s"] > 0 and cold["app"]["import_s"] > 0 and cold["ratio"] > 0
    cost = results["cost"]["workloads"][workload["name"]]
    assert cost["lambda_gb_s_per_million_location_hours"] > 0
    assert cost["s3_requests_per_million_location_hours"] > 0
    assert results["cost"]["memory_mb"] == 1769

    assert [t["name"] for t in results["targets"]] == list(TARGETS)
    assert "## Results" in markdown and "## Targets" in markdown
    assert "## Results on one core" in markdown
    # bench/parquet.py: Parquet bytes per brand-day and the commit's CPU for them.
    assert (
        results["parquet"]["parquet_bytes"] > 0 and results["parquet"]["parquet_commit_cpu_s"] > 0
    )
    assert "## Parquet table" in markdown
    # bench/lake_month.py: a nightly commit into a month's sums, both ways, measured.
    month = results["lake_month"]
    assert month["document_bytes"] > 0 and month["days"] == 3
    for mode in ("per-day", "whole"):
        assert month[mode]["cpu_s"] > 0 and month[mode]["peak_rise_mb"] >= 0, mode
    assert "## A month's sums, a day at a time" in markdown
    assert markdown.count(scale) == 1 and "old generated text" not in markdown
    assert "<!-- notes:start -->" in markdown and "<!-- notes:end -->" in markdown


def test_notes_survive_a_rewrite(tmp_path: Path) -> None:
    from bench import report  # noqa: PLC0415

    path = tmp_path / "performance.md"
    notes = "<!-- notes:start -->\n## Design notes\n\nkeep me\n<!-- notes:end -->"
    path.write_text(f"# Performance\n\n{notes}\n\nold generated text\n")
    assert report.existing_notes(path) == notes

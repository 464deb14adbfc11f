"""docs/performance.md from the benchmark's results (the hand-written notes survive)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench import lake_month, parquet, scale_report
from bench.common import fmt, table

NOTES_START, NOTES_END = "<!-- notes:start -->", "<!-- notes:end -->"
DEFAULT_NOTES = f"""{NOTES_START}
## Design notes

(Hand-written; `make bench` keeps everything between the notes markers.)
{NOTES_END}"""

METHOD = """\
## Method

`make bench` (`bench/run.py`) starts the fake analytiks API (`python -m
local.fake_analytiks`, page size 50) and the moto server, each in its own
process on a free loopback port, and creates the bucket, queue (+ DLQ), topic
(+ an SQS inbox subscribed to it) and the API secret through boto3 with
`AWS_ENDPOINT_URL` pointing at moto. The repository's own code is byte-compiled
first (site-packages were at install), so no child compiles the exporter from
source. Every measured workload then runs in a fresh child process (`python -m
bench.child MODE`):

* **bare**: token, then every v3 page of the range with urllib3; the bytes
  are read and discarded (the cursor is read off the head of the page). The
  floor: what moving the data over HTTP costs.
* **raw-gzip**: bare + stdlib `gzip.compress(page, 6)` of every raw page and
  one S3 `put_object` per page. The naive exporter.
* **exporter**: the real handler with the deployment's environment: an
  on-demand invoke (plans and enqueues the windows), then
  `local.harness.drain` delivers the queue's messages the way Lambda's event
  source mapping does (walk, stage, commit, notify). Logs at WARNING, tracing off.
* **json-only** (2,000 locations): the exporter as deployed with
  `EnableParquet=false`, the JSON table only, into a table and ledger of its
  own (same brand, same pages): the exporter's figures less these are what
  its Parquet twin costs a run.

Wall time runs from the fork of the child process to the end of its job (so it
includes interpreter start and imports, as a cold Lambda pays them, but not the
child's checks of the result afterwards; `work` is the child's own timing
without imports), CPU (user + sys) and peak RSS come from `os.wait4`'s
rusage of that child. The fake API and moto run in other processes and are
not in the CPU and RSS figures. The exporter's child also plays Lambda's part:
its own boto3 session, the event source mapping's receives and deletes, and the
checks of the result afterwards all run on its main thread, and that thread's
CPU time in them ("harness CPU") is taken out of its CPU figure (the function
is not billed for them; everything the handler and its threads do stays in).
Each figure is the median of the repetitions, the CPU with the range of the
repetitions, and "CPU vs raw-gzip" is the ratio of the medians with the range of
each repetition's ratio to the raw-gzip run of its round; the modes run
interleaved (rotating order) so drift hits them all. The
fake's page cache is warmed by one untimed bare walk per workload (and, where
a selection is measured, one untimed selection run: it warms the v1 answers and
leaves a committed selection, so every measured selection replaces one, as
every measured exporter run after the first replaces whole days). S3
requests are counted with a botocore `before-call` hook on the exporter's
session. Cost figures use the template's `FunctionMemory` and the exporter's
wall time (a conservative stand-in for billed duration: local HTTP and moto
are not AWS).
"""


ONE_CORE = """\
The same workloads, each measured process pinned to core 0 (`sched_setaffinity`
in bench/spawn.py before exec), while the fake API and moto are kept to the
other core: Lambda at the template's 1,769 MB gives the function one vCPU, so
there wall time is CPU time and the exporter's reading, shaping and compressing
threads take turns on one core. Ratios are against the pinned baselines."""


def workloadtable(res: dict[str, Any], group: str = "modes") -> str:
    header = [
        "workload",
        "mode",
        "wall s",
        "work s",
        "CPU s (min-max)",
        "harness CPU s",
        "peak RSS MB",
        "loc-h / CPU-s",
        "bytes written",
        "objects",
        "API calls",
        "wall vs bare",
        "wall vs raw-gzip",
        "CPU vs bare",
        "CPU vs raw-gzip (per run)",
    ]
    rows = []
    for w in res["workloads"]:
        for mode, m in (w.get(group) or {}).items():
            rows.append(
                [
                    w["name"],
                    mode,
                    fmt(m["wall_s"]),
                    fmt(m["work_s"]),
                    _spread(m["cpu_s"], m.get("cpu_range_s")),
                    fmt(m.get("harness_cpu_s")),
                    fmt(m["rss_mb"], 0),
                    fmt(m["location_hours_per_cpu_s"], 0),
                    fmt(m["bytes_written"]),
                    fmt(m["objects_written"]),
                    fmt(m["api_calls"]),
                    fmt(m.get("wall_vs_bare")),
                    fmt(m.get("wall_vs_raw_gzip")),
                    fmt(m.get("cpu_vs_bare")),
                    _spread(m.get("cpu_vs_raw_gzip"), m.get("cpu_vs_raw_gzip_range")),
                ]
            )
    return table(header, rows)


PROCESS_COSTS = """\
What each measured process spent besides its data path, medians of the
repetitions: CPU split into user and system time, minor page faults (memory
touched for the first time: the kernel maps and zeroes a page for each) and
context switches (the process waited, on I/O or a lock, or was preempted; the
exporter's reading, compressing and S3 threads hand the GIL to each other), all
from `os.wait4`'s rusage, and the AWS calls it made (the exporter's counted by
the botocore hook, its harness's own calls not included; raw-gzip's are its
PUTs). The CPU figures are the process's, the harness's share included."""


def processtable(res: dict[str, Any]) -> str:
    header = [
        "workload",
        "cores",
        "mode",
        "user s",
        "sys s",
        "minor faults",
        "context switches",
        "AWS calls",
    ]
    rows = []
    for w in res["workloads"]:
        for group, cores in (("modes", "2"), ("pinned", "1")):
            for mode, m in (w.get(group) or {}).items():
                if "minor_faults" not in m:
                    continue
                calls = m.get("aws_calls")
                rows.append(
                    [
                        w["name"],
                        cores,
                        mode,
                        fmt(m["user_s"]),
                        fmt(m["sys_s"]),
                        fmt(m["minor_faults"], 0),
                        fmt(m["context_switches"], 0),
                        fmt(sum(calls.values()) if calls else m.get("s3_requests", 0)),
                    ]
                )
    return table(header, rows)


def _spread(value: float | None, low_high: list[float] | None) -> str:
    """A median with the range of the repetitions: `2.10 (1.98-2.20)`."""
    if value is None or not low_high:
        return fmt(value)
    return f"{fmt(value)} ({fmt(low_high[0])}-{fmt(low_high[1])})"


def targetstable(res: dict[str, Any]) -> str:
    rows = []
    for t in res["targets"]:
        verdict = "not measured" if t["met"] is None else ("MET" if t["met"] else "NOT MET")
        if t["figure"] is None:
            figure = t["text"] if t["met"] is not None else "-"
        else:
            figure = f"{fmt(t['figure'])} {t['text']} (limit {fmt(t['limit'])})"
        rows.append([t["name"], verdict, figure])
    return table(["target", "verdict", "figure"], rows)


def details(res: dict[str, Any]) -> str:
    size = res.get("output_size") or {}
    cold = res["cold_start"]
    parts = ["## Output size", ""]
    if size:
        parts.append(
            f"Objects of the first workload ({fmt(size['objects'])} objects, "
            f"{fmt(size['rows'])} rows): JSON Lines {fmt(size['json_lines_bytes_per_row'], 1)} "
            f"bytes/row; the exporter's gzip {fmt(size['exporter_bytes_per_row'], 2)} bytes/row; "
            f"stdlib gzip level 6 of the same lines {fmt(size['stdlib_gzip6_bytes_per_row'], 2)} "
            f"bytes/row: ratio {fmt(size['ratio'], 3)}."
        )
    parts += [
        "",
        "## Cold start",
        "",
        f"Median of {cold['runs']} fresh `python -c` processes, import time measured inside: "
        f"`import boto3` {fmt(cold['boto3']['import_s'] * 1000, 0)} ms, `import app` "
        f"{fmt(cold['app']['import_s'] * 1000, 0)} ms (ratio {fmt(cold['ratio'], 2)}; "
        f"`import app` loads boto3: {fmt(cold['app']['boto3_loaded'])}). Whole processes: "
        f"{fmt(cold['boto3']['process_wall_s'] * 1000, 0)} ms and "
        f"{fmt(cold['app']['process_wall_s'] * 1000, 0)} ms.",
        "",
        "## API and correctness",
        "",
    ]
    rows = []
    for w, check in zip(res["workloads"], res["api"]["checks"], strict=True):
        e = w["modes"]["exporter"]
        rows.append(
            [
                w["name"],
                fmt(e["rows"]),
                fmt(w["expected_rows"]),
                fmt(check["api_calls"]),
                fmt(check["pages"]),
                fmt(check["retries"]),
                fmt(check["expected_pages"]),
                fmt(e["invocations"]),
                e["status"],
            ]
        )
    parts.append(
        table(
            [
                "workload",
                "rows",
                "expected rows",
                "API calls",
                "pages",
                "retries",
                "expected pages",
                "invocations",
                "run",
            ],
            rows,
        )
    )
    counters = res["api"].get("fake_api_counters")
    parts += [
        "",
        "The fake API's own counters: "
        + ("read over HTTP." if counters else "not exposed over HTTP; the manifest is used."),
        "",
        "## Cost",
        "",
    ]
    c = res["cost"]
    rows = [
        [
            name,
            fmt(v["lambda_gb_s_per_million_location_hours"], 1),
            fmt(v["s3_requests_per_million_location_hours"], 0),
            ", ".join(f"{op} {n}" for op, n in v["s3_by_operation"].items()),
        ]
        for name, v in c["workloads"].items()
    ]
    parts.append(
        f"At {c['memory_mb']} MB (template default), from the exporter's wall time:\n\n"
        + table(
            ["workload", "Lambda GB-s / M location-hours", "S3 requests / M loc-h", "S3 calls"],
            rows,
        )
    )
    return "\n".join(parts)


def machine(res: dict[str, Any]) -> str:
    m, src = res["machine"], res["source"]
    changes = ", ".join(f"`{line}`" for line in src["uncommitted"]) or "none"
    warning = (
        " **The exporter's sources changed during the run: the figures are mixed.**"
        if src.get("changed_during_run")
        else ""
    )
    return (
        f"## Machine\n\n{m['cpu_model']}, {m['cores']} cores, {m['platform']}, Python "
        f"{m['python']}; run {m['date']}, {res['config']['repetitions']} repetition(s), "
        f"took {res['duration_s']:.0f} s. Code: `{src['git_head'][:12]}`, uncommitted "
        f"changes under functions/ and local/: {changes}.{warning}"
    )


def render(res: dict[str, Any], notes: str, scale: str | None = None) -> str:
    return (
        "\n\n".join(
            [
                "# Performance",
                notes,
                "<!-- Everything below is generated by `make bench` (bench/run.py), but the "
                "scale section, which `make bench-scale` writes (bench/scale.py). -->",
                METHOD.rstrip(),
                "## Results\n\n" + workloadtable(res),
                "## Results on one core\n\n" + ONE_CORE + "\n\n" + workloadtable(res, "pinned"),
                "## Process costs\n\n" + PROCESS_COSTS + "\n\n" + processtable(res),
                "## Targets\n\n" + targetstable(res),
                details(res),
                *([parquet.section(res["parquet"])] if res.get("parquet") else []),
                *([lake_month.section(res["lake_month"])] if res.get("lake_month") else []),
                machine(res),
                *([scale] if scale else []),
            ]
        )
        + "\n"
    )


def existing_notes(path: Path) -> str:
    if path.exists():
        found = re.search(
            re.escape(NOTES_START) + r".*?" + re.escape(NOTES_END), path.read_text(), re.S
        )
        if found:
            return found.group(0)
    return DEFAULT_NOTES


def write(path: Path, res: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The scale section is `make bench-scale`'s: kept as it is.
    path.write_text(render(res, existing_notes(path), scale_report.existing_section(path)))


def summary(res: dict[str, Any]) -> str:
    return "\n\n".join([workloadtable(res), targetstable(res)])

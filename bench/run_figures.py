"""`make bench`'s derived figures: medians of the repetitions, ratios to the baselines,
the targets, the API checks and the cost per run."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.run import Workload


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def summarize(w: Workload, runs: list[dict[str, Any]]) -> dict[str, Any]:
    wall = median([r["wall_s"] for r in runs])
    cpu = median([r["cpu_s"] for r in runs])
    out: dict[str, Any] = {
        "runs": [
            {
                k: r[k]
                for k in (
                    "wall_s",
                    "work_s",
                    "cpu_s",
                    "process_cpu_s",
                    "harness_cpu_s",
                    "user_s",
                    "sys_s",
                    "rss_mb",
                    "vmhwm_mb",
                    "minor_faults",
                    "context_switches",
                )
            }
            for r in runs
        ],
        "wall_s": wall,
        "work_s": median([r["work_s"] for r in runs]),
        "cpu_s": cpu,
        "cpu_range_s": [min(r["cpu_s"] for r in runs), max(r["cpu_s"] for r in runs)],
        "harness_cpu_s": median([r["harness_cpu_s"] for r in runs]),
        "user_s": median([r["user_s"] for r in runs]),
        "sys_s": median([r["sys_s"] for r in runs]),
        "minor_faults": median([r["minor_faults"] for r in runs]),
        "context_switches": median([r["context_switches"] for r in runs]),
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
                # The spread: each repetition against the baseline's run of the same
                # round (the modes run interleaved, so a round shares the machine's state).
                each = [
                    a["cpu_s"] / b["cpu_s"] for a, b in zip(fig["runs"], ref["runs"], strict=False)
                ]
                fig[f"cpu_vs_{key}_runs"] = each
                fig[f"cpu_vs_{key}_range"] = [min(each), max(each)] if each else None
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

    def cpu_target(name: str, w: dict[str, Any] | None, group: str) -> dict[str, Any]:
        fig = None if w is None else (w.get(group) or {}).get("exporter")
        if fig is None or "cpu_vs_raw_gzip" not in fig:
            return target(name, None, 1.0, "x raw-gzip")
        low, high = fig["cpu_vs_raw_gzip_range"]
        runs = len(fig["cpu_vs_raw_gzip_runs"])
        return target(
            name,
            float(fig["cpu_vs_raw_gzip"]),
            1.0,
            f"x raw-gzip (medians; per repetition {low:.2f}-{high:.2f}, {runs} runs)",
        )

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
        cpu_target("exporter CPU <= 1.0 x raw-gzip CPU (2,000 locations)", small, "modes"),
        cpu_target(
            "one core: exporter CPU <= 1.0 x raw-gzip CPU (2,000 locations)", small, "pinned"
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

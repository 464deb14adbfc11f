"""The scale section of docs/performance.md and its plot, from bench/scale.py's results.

`make bench-scale` rewrites only what lies between SCALE_START and SCALE_END in
docs/performance.md (appending the section the first time); `make bench`
(bench/report.py) keeps that part as it is when it regenerates the page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench.common import fmt, table

SCALE_START, SCALE_END = "<!-- scale:start -->", "<!-- scale:end -->"


def _published(results: dict[str, Any], workload: str) -> dict[str, Any] | None:
    """The one-poller run of a workload: the least CPU contention on this machine, so its
    invocation times are the closest to Lambda's own vCPU per invocation."""
    runs = [s for s in results["scenarios"] if s["workload"] == workload and not s["rate_limit"]]
    return min(runs, key=lambda s: s["workers"]) if runs else None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for sc in results["scenarios"]:
        if sc["workers"] == 8 and not sc["rate_limit"]:
            out.append(
                {
                    "name": f"{sc['workload']}: 8 pollers, no rate limit, "
                    "wall <= 1.3 x API-bound limit",
                    "met": sc["wall_vs_limit"] <= 1.3,
                    "figure": f"{sc['wall_s']:.1f} s = {sc['wall_vs_limit']:.2f} x "
                    f"{sc['limit_s']:.1f} s",
                }
            )
        if sc["rate_limit"]:
            r = sc["rate_limit"]
            kind = f"{r:g} in any second, {sc['workers']} pollers" if sc.get("sliding") else ""
            out.append(
                {
                    "name": f"{sc['workload']}: rate limit {kind or f'{r:g}/s'}, "
                    f"the API sees <= {r:g}/s over any 5 s",
                    "met": sc["max_rate_5s"] <= r,
                    "figure": f"max {sc['max_rate_5s']:.1f}/s (mean {sc['mean_rate']:.1f}/s)",
                }
            )
            out.append(
                {
                    "name": f"{sc['workload']}: rate limit {kind or f'{r:g}/s'}, "
                    "429s < 5 % of export requests",
                    "met": sc["throttled_share"] < 0.05,
                    "figure": f"{sc['throttled']:,} of {sc['requests']:,} "
                    f"({sc['throttled_share']:.2%})",
                }
            )
    bad = [s["scenario"] for s in results["scenarios"] if not s["checks"]["ok"]]
    out.append(
        {
            "name": "every row of every brand exactly once, one notification per run (every run)",
            "met": not bad,
            "figure": "all runs" if not bad else "failed: " + ", ".join(bad),
        }
    )
    return out


# -- the markdown section -----------------------------------------------------------------


def _api_per_window(s: dict[str, Any]) -> float:
    """The API's share of one invocation: a window's pages x the latency (or the pacing)."""
    windows = s["checks"]["windows"] or 1
    per_page = s["latency_s"]
    if s["rate_limit"]:
        from exporter.pacing import share  # noqa: PLC0415 -- the exporter's own formula

        per_page = max(per_page, 1 / share(s["rate_limit"], s["workers"]))
    return float(s["pages"] / windows * per_page)


def reading(results: dict[str, Any]) -> str:
    """What the run says, from its own figures."""
    out: list[str] = []
    for s in results["scenarios"]:
        if s["rate_limit"] or s["workers"] != 8:
            continue
        mean = s["invocation_wall_s"] / s["invocations"]
        api = _api_per_window(s)
        cpu = s["cpu"]
        busy = (cpu["ours_s"] + cpu["others_s"]) / s["wall_s"]
        out.append(
            f"- **{s['workload']}, 8 pollers: {s['wall_vs_limit']:.2f} x the limit.** An "
            f"invocation took {mean:.2f} s on average for {api:.2f} s of API answers "
            f"({mean / api:.2f} x): each page is read and parsed before the next is asked "
            "for (the cursor is in it), and a step makes its S3 and SQS calls (about "
            f"{sum(s['aws_calls'].values()) / s['brand_days']:.0f} per brand-day, plus the "
            "poller's receive and delete; the ones side by side still queue at the one "
            "moto server); the limit counts neither. "
            f"On average {busy:.2f} of the machine's {cpu['cores']} cores were busy "
            f"({cpu['others_s']:,.0f} CPU-s of it other jobs'), which stretches both. The "
            f"start invocation had every window queued after {s['fanned_out_s']:.1f} s "
            "(the pollers started on the first ones at once)."
        )
    out.append(
        "- **16 pollers** on 2 cores are CPU-bound here (the plot's flattening): what "
        "Lambda would give 16 vCPUs shares 2. The API-bound limit halves, the wall time "
        "does not."
    )
    out.append(
        "- **Hops are 0**: with the template's 900 s timeout a 1-day window of 2,000 "
        "locations (40 pages) takes one invocation; back-offs are 0 because no run was "
        "throttled (the rate-limited runs paced themselves under the limit)."
    )
    return "\n".join(out)


def resultstable(results: dict[str, Any]) -> str:
    rows = []
    for s in results["scenarios"]:
        c = s["checks"]
        cpu = s["cpu"]
        rows.append(
            [
                s["scenario"],
                fmt(s["workers"]),
                (fmt(s["rate_limit"], 0) + (" in any 1 s" if s.get("sliding") else ""))
                if s["rate_limit"]
                else "-",
                fmt(s["wall_s"], 1),
                fmt(s["limit_s"], 1),
                fmt(s["wall_vs_limit"]),
                fmt(s["fanned_out_s"], 1),
                f"{s['invocation_wall_s'] / s['invocations']:.2f} / {_api_per_window(s):.2f}",
                f"{s['requests']:,} / {s['pages']:,}",
                f"{s['throttled_share']:.2%}",
                fmt(s["max_rate_5s"], 1),
                fmt(s["invocations"]),
                fmt(c["hops"]),
                fmt(c["backoffs"]),
                fmt(s["redelivered"]),
                " / ".join(
                    f"{cpu[k]:,.0f}" for k in ("exporter_s", "moto_s", "fake_api_and_bench_s")
                ),
                f"{cpu['others_s']:,.0f}",
                "yes" if c["ok"] else "NO",
            ]
        )
    return table(
        [
            "run",
            "pollers",
            "rate limit /s",
            "wall s",
            "API-bound limit s",
            "wall / limit",
            "fanned out after s",
            "invocation s: mean / API",
            "requests / pages",
            "429s",
            "max 5-s rate /s",
            "invocations",
            "hops",
            "back-offs",
            "redelivered",
            "CPU s: exporter / moto / fake API",
            "CPU s: other load",
            "exactly once",
        ],
        rows,
    )


def targetstable(results: dict[str, Any]) -> str:
    rows = [[t["name"], "MET" if t["met"] else "NOT MET", t["figure"]] for t in results["targets"]]
    return table(["target", "verdict", "figure"], rows)


def cost_section(results: dict[str, Any]) -> str:
    parts: list[str] = []
    for workload in dict.fromkeys(s["workload"] for s in results["scenarios"]):
        sc = _published(results, workload)
        if sc is None:
            continue
        c = results["cost"]["scenarios"][sc["scenario"]]
        days = sc["brand_days"]
        rows = [
            [
                line["line"],
                f"{line['quantity']:,.3f}"
                if isinstance(line["quantity"], float)
                else f"{line['quantity']:,}",
                line["unit"],
                f"${line['price']:.10f}".rstrip("0"),
                f"${line['usd']:.5f}",
                f"${line['usd'] / days:.7f}",
                line["how"],
            ]
            for line in c["lines"]
        ]
        rows.append(
            [
                "**total**",
                "",
                "",
                "",
                f"**${c['total_usd']:.5f}**",
                f"**${c['per_brand_day_usd']:.7f}**",
                "",
            ]
        )
        parts.append(
            f"**{workload}** (run `{sc['scenario']}`: {days:,} brand-days of "
            f"{sc['pages'] // days:,} pages each):\n\n"
            + table(
                ["line", "quantity", "unit", "list price", "run", "per brand-day", "counted from"],
                rows,
            )
            + f"\n\nStored: {c['stored_bytes_per_brand_day'] / 1e6:,.1f} MB of gzip per "
            f"brand-day, ${c['storage_per_brand_day_month_usd']:.6f} per brand-day and month "
            "kept in S3 Standard. "
            f"Lambda's CPU-only floor (an API answering instantly): "
            f"${c['lambda_cpu_floor_per_brand_day_usd']:.7f} per brand-day."
        )
    return "\n\n".join(parts)


def render(results: dict[str, Any], plot: str) -> str:
    cfg = results["config"]
    lat_ms = cfg["latency_s"] * 1000
    smoke = " **(smoke sizes: the harness works; these are not figures)**" if cfg["smoke"] else ""
    m = results["machine"]
    return "\n\n".join(
        [
            SCALE_START,
            "## Scale: brand-years and hundreds of brands (`make bench-scale`)",
            "<!-- Generated by `make bench-scale` (bench/scale.py, bench/scale_report.py) between "
            "the scale markers; `make bench` keeps it. The method and choices are in "
            'docs/decisions.md, "Scale". -->',
            f"![wall time against pollers, with the API-bound limit]({plot})",
            "### Results" + smoke,
            f"Fake API latency {lat_ms:g} ms per answer (a floor that includes its own work), "
            f"pages of {cfg['page_size']} locations, 1-day windows, one moto server. Wall time: "
            "from starting the invocation that starts the runs to the last run's `notified` "
            "marker. API-bound limit: pages x latency / pollers, or pages / rate limit, "
            "whichever is larger. Rate limit: a token bucket of one second's worth, or "
            '"in any 1 s": at most that many accepted in any sliding second, the strict '
            "case (bench/scale_strict.py; `API_MAX_RPS` the same, pacing adapts to its "
            '429s). "fanned out after": when the start invocation had every '
            "window in the queue. Hops: steps beyond each window's first; back-offs: "
            "throttled steps re-sent delayed. CPU: user + sys of the exporter's processes "
            "(pollers and start), of moto, and of this process (the fake API and the bench); "
            '"other load" is the machine\'s busy time minus ours: other work on the '
            f"shared {m['cores']}-core machine while the run ran.",
            resultstable(results),
            "### Reading the figures",
            reading(results),
            "### Targets",
            targetstable(results),
            "### Cost per brand-day (2,000 locations, hourly)",
            "List prices, US East (N. Virginia), x86, no free tier. Each line is counted from "
            "the run: the exporter's own AWS calls (botocore hooks on its session, in every "
            "process), the pollers' receives and deletes (Lambda's event source mapping "
            "makes those), the invocations and their wall time, and the bytes the function "
            "logged. The one-poller run of each workload is the one published: on this "
            "machine more pollers share two cores, which stretches each invocation's wall "
            "time where Lambda would give each its own vCPU. Not per brand-day, so not "
            "here: the pollers' idle long polls (about 21,600 receives a day for the "
            "mapping's 5 pollers, $0.009/day), the secret ($0.40/month), custom metrics and "
            "alarms.",
            cost_section(results),
            f"Run {m['date']}, {m['cores']} cores, Python {m['python']}, took "
            f"{results['duration_s']:.0f} s.",
            SCALE_END,
        ]
    )


def write_section(path: Path, results: dict[str, Any], plot: str) -> None:
    """Replace the scale section of `path` (append it if there is none)."""
    section = render(results, plot)
    text = path.read_text() if path.exists() else "# Performance\n"
    pattern = re.compile(re.escape(SCALE_START) + r".*?" + re.escape(SCALE_END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def existing_section(path: Path) -> str | None:
    """The scale section of an existing page (bench/report.py keeps it)."""
    if not path.exists():
        return None
    found = re.search(
        re.escape(SCALE_START) + r".*?" + re.escape(SCALE_END), path.read_text(), re.S
    )
    return found.group(0) if found else None


def summary(results: dict[str, Any]) -> str:
    return "\n\n".join([resultstable(results), targetstable(results)])

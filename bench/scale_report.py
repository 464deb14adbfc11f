"""The scale section of docs/performance.md and its plot, from bench/scale.py's results.

`make bench-scale` rewrites only what lies between SCALE_START and SCALE_END in
docs/performance.md (appending the section the first time); `make bench`
(bench/report.py) keeps that part as it is when it regenerates the page.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Final

SCALE_START, SCALE_END = "<!-- scale:start -->", "<!-- scale:end -->"

# List prices, US East (N. Virginia), x86, no free tier (AWS pricing pages).
PRICES: Final[dict[str, float]] = {
    "lambda_gb_s": 0.0000166667,  # per GB-second
    "lambda_request": 0.20 / 1e6,
    "s3_tier1": 0.005 / 1000,  # PUT, COPY, POST, LIST
    "s3_tier2": 0.0004 / 1000,  # GET, HEAD and all other requests
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KB request
    "sns_publish": 0.50 / 1e6,
    "secrets_call": 0.05 / 10_000,
    "logs_gb": 0.50,  # CloudWatch Logs ingestion, per GB
    "s3_gb_month": 0.023,  # S3 Standard storage, first 50 TB
}
# DeleteObjects is a POST: priced with PUT/COPY/POST/LIST (single DELETEs are free).
S3_TIER1: Final = ("PutObject", "CopyObject", "ListObjectsV2", "DeleteObjects")
S3_TIER2: Final = ("GetObject", "HeadObject")


def _s3(calls: dict[str, int], ops: tuple[str, ...]) -> int:
    return sum(calls.get(f"s3.{op}", 0) for op in ops)


def cost_lines(sc: dict[str, Any], memory_mb: int) -> list[dict[str, Any]]:
    """What one scenario cost at list prices, line by line, counted from the run."""
    calls, poller = sc["aws_calls"], sc["poller_calls"]
    gb = memory_mb / 1024
    sends = calls.get("sqs.SendMessageBatch", 0) + calls.get("sqs.SendMessage", 0)
    delivered = poller.get("ReceiveMessage", 0)
    other_s3 = {
        k: v
        for k, v in calls.items()
        if k.startswith("s3.") and k.split(".", 1)[1] not in S3_TIER1 + S3_TIER2
    }
    lines = [
        (
            "Lambda duration",
            sc["invocation_wall_s"] * gb,
            "GB-s",
            PRICES["lambda_gb_s"],
            f"every invocation's wall time ({sc['invocations']:,} of them, "
            f"{sc['invocation_wall_s']:,.1f} s) x {memory_mb} MB",
        ),
        (
            "Lambda requests",
            sc["invocations"],
            "requests",
            PRICES["lambda_request"],
            "the start invocation + one per queue message delivered",
        ),
        (
            "S3 PUT/COPY/POST/LIST",
            _s3(calls, S3_TIER1),
            "requests",
            PRICES["s3_tier1"],
            ", ".join(f"{op} {calls.get('s3.' + op, 0):,}" for op in S3_TIER1),
        ),
        (
            "S3 GET/HEAD",
            _s3(calls, S3_TIER2) + sum(other_s3.values()),
            "requests",
            PRICES["s3_tier2"],
            ", ".join(f"{op} {calls.get('s3.' + op, 0):,}" for op in S3_TIER2)
            + ("; " + ", ".join(f"{k} {v}" for k, v in other_s3.items()) if other_s3 else ""),
        ),
        (
            "SQS requests",
            sends + 2 * delivered,
            "requests",
            PRICES["sqs_request"],
            f"{sends:,} sends (batches of up to 10) + {delivered:,} receives and "
            f"{delivered:,} deletes by the pollers",
        ),
        (
            "SNS publishes",
            calls.get("sns.Publish", 0),
            "publishes",
            PRICES["sns_publish"],
            "one notification per run",
        ),
        (
            "Secrets Manager",
            calls.get("secrets-manager.GetSecretValue", 0),  # botocore's event name
            "calls",
            PRICES["secrets_call"],
            "the API credentials, once per container (cached 5 min)",
        ),
        (
            "CloudWatch Logs",
            sc["log_bytes"] / 1e9,
            "GB",
            PRICES["logs_gb"],
            f"{sc['log_bytes']:,} bytes of JSON logs and EMF metrics at LOG_LEVEL=INFO",
        ),
    ]
    return [
        {"line": name, "quantity": q, "unit": unit, "price": price, "usd": q * price, "how": how}
        for name, q, unit, price, how in lines
    ]


def costs(results: dict[str, Any]) -> dict[str, Any]:
    memory = results["config"]["memory_mb"]
    out: dict[str, Any] = {"prices": PRICES, "memory_mb": memory, "scenarios": {}}
    for sc in results["scenarios"]:
        lines = cost_lines(sc, memory)
        total = sum(line["usd"] for line in lines)
        days = sc["brand_days"]
        cpu_floor = sc["invocation_cpu_s"] * memory / 1024 * PRICES["lambda_gb_s"]
        stored = sc["checks"]["bytes"]
        out["scenarios"][sc["scenario"]] = {
            "lines": lines,
            "total_usd": total,
            "per_brand_day_usd": total / days,
            "lambda_cpu_floor_per_brand_day_usd": cpu_floor / days,
            "stored_bytes_per_brand_day": stored / days,
            "storage_per_brand_day_month_usd": stored / days / 1e9 * PRICES["s3_gb_month"],
        }
    return out


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


# -- the plot (SVG, no dependencies) ---------------------------------------------------------


def _el(tag: str, text: str = "", **attrs: Any) -> str:
    """One SVG element; attribute names use _ for - (stroke_width -> stroke-width)."""
    joined = " ".join(
        f'{k.rstrip("_").replace("_", "-")}="{v:.1f}"'
        if isinstance(v, float)
        else f'{k.rstrip("_").replace("_", "-")}="{v}"'
        for k, v in attrs.items()
    )
    return f"<{tag} {joined}>{text}</{tag}>" if text else f"<{tag} {joined}/>"


BLUE, RED, GREY, GREEN = "#1f77b4", "#d62728", "#999", "#2ca02c"


def _triangle(x: float, y: float) -> str:
    return _el(
        "path",
        d=f"M{x:.1f},{y - 6:.1f} L{x + 5:.1f},{y + 4:.1f} L{x - 5:.1f},{y + 4:.1f} Z",
        fill=GREEN,
    )


def _nice(value: float, down: bool = False) -> float:
    """The nearest 1, 2 or 5 x 10^k below (down) or above `value`: an axis end."""
    value = max(value, 1e-3)
    exponent = math.floor(math.log10(value))
    steps = [m * 10.0**e for e in (exponent - 1, exponent, exponent + 1) for m in (1, 2, 5)]
    return max(v for v in steps if v <= value) if down else min(v for v in steps if v >= value)


def _panel(
    runs: list[dict[str, Any]], title: str, x0: float, width: float, height: float
) -> list[str]:
    plain = sorted((r for r in runs if not r["rate_limit"]), key=lambda r: r["workers"])
    limited = [r for r in runs if r["rate_limit"]]
    if not plain:
        return []
    workers = [r["workers"] for r in plain]
    values = [r["wall_s"] for r in runs] + [r["limit_s"] for r in runs]
    lo, hi = _nice(min(values) / 1.15, down=True), _nice(max(values) * 1.35)
    left, right, top, bottom = x0 + 60, x0 + width - 15, 40.0, height - 45.0
    wmin, wmax = min(workers), max(*workers, 2)
    span = (math.log2(wmax) - math.log2(wmin)) or 1.0

    def px(w: float) -> float:
        return left + (math.log2(w) - math.log2(wmin)) / span * (right - left)

    def py(v: float) -> float:
        share = (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        return bottom - share * (bottom - top)

    middle = (top + bottom) / 2
    out = [
        _el("text", title, x=(left + right) / 2, y=22, text_anchor="middle", font_weight="bold"),
        _el("line", x1=left, y1=bottom, x2=right, y2=bottom, stroke="#333"),
        _el("line", x1=left, y1=top, x2=left, y2=bottom, stroke="#333"),
        _el("text", "pollers", x=(left + right) / 2, y=height - 8, text_anchor="middle"),
        _el(
            "text",
            "wall time, s (log)",
            x=x0 + 14,
            y=middle,
            text_anchor="middle",
            transform=f"rotate(-90 {x0 + 14:.1f} {middle:.1f})",
        ),
    ]
    decade = 10 ** math.floor(math.log10(lo))
    while decade <= hi * 1.0001:
        for m in (1, 2, 5):
            v = decade * m
            if lo <= v <= hi:
                y = py(v)
                out.append(_el("line", x1=left, y1=y, x2=right, y2=y, stroke="#eee"))
                out.append(
                    _el("text", f"{v:g}", x=left - 5, y=y + 4, text_anchor="end", font_size=11)
                )
        decade *= 10
    for w in workers:
        out.append(_el("text", str(w), x=px(w), y=bottom + 16, text_anchor="middle", font_size=11))

    def path(points: list[tuple[float, float]], **style: Any) -> str:
        d = " ".join(
            f"{'M' if i == 0 else 'L'}{px(a):.1f},{py(b):.1f}" for i, (a, b) in enumerate(points)
        )
        return _el("path", d=d, fill="none", **style)

    out.append(
        path(
            [(r["workers"], r["limit_s"] * 1.3) for r in plain], stroke=GREY, stroke_dasharray="2,3"
        )
    )
    out.append(
        path(
            [(r["workers"], r["limit_s"]) for r in plain],
            stroke=RED,
            stroke_dasharray="6,4",
            stroke_width=1.5,
        )
    )
    out.append(path([(r["workers"], r["wall_s"]) for r in plain], stroke=BLUE, stroke_width=2))
    for r in plain:
        out.append(_el("circle", cx=px(r["workers"]), cy=py(r["wall_s"]), r=3.5, fill=BLUE))
    for r in limited:
        x, y, ly = px(r["workers"]), py(r["wall_s"]), py(r["limit_s"])
        out.append(_triangle(x, y))
        out.append(
            _el("line", x1=x - 14, y1=ly, x2=x + 14, y2=ly, stroke=GREEN, stroke_dasharray="3,2")
        )
    return out


def svg(results: dict[str, Any]) -> str:
    # A workload measured only rate-limited (the strict case) has no curve to draw.
    names = list(dict.fromkeys(s["workload"] for s in results["scenarios"] if not s["rate_limit"]))
    width, height = 460.0, 330.0
    body: list[str] = []
    for n, name in enumerate(names):
        runs = [s for s in results["scenarios"] if s["workload"] == name]
        w = results["config"]["workloads"][name]
        title = (
            f"{name}: {len(w['brands'])} brand(s) x {w['locations']:,} locations "
            f"x {w['days']} day(s)"
        )
        body += _panel(runs, title, n * width, width, height)
    total = max(1, len(names)) * width
    y = height + 12
    legend = [
        _el("line", x1=70, y1=y, x2=100, y2=y, stroke=BLUE, stroke_width=2),
        _el("text", "measured wall time", x=105, y=y + 4, font_size=12),
        _el(
            "line", x1=240, y1=y, x2=270, y2=y, stroke=RED, stroke_dasharray="6,4", stroke_width=1.5
        ),
        _el("text", "API-bound limit (pages x latency / pollers)", x=275, y=y + 4, font_size=12),
        _el("line", x1=545, y1=y, x2=575, y2=y, stroke=GREY, stroke_dasharray="2,3"),
        _el("text", "1.3 x limit", x=580, y=y + 4, font_size=12),
        _triangle(660, y),
        _el("text", "rate-limited (- - its limit: pages / rate)", x=670, y=y + 4, font_size=12),
    ]
    head = _el(
        "svg",
        "\n"
        + "\n".join([_el("rect", width="100%", height="100%", fill="white"), *body, *legend])
        + "\n",
        xmlns="http://www.w3.org/2000/svg",
        width=total,
        height=height + 24,
        viewBox=f"0 0 {total:.0f} {height + 24:.0f}",
        font_family="sans-serif",
        font_size=13,
    )
    return head + "\n"


# -- the markdown section -----------------------------------------------------------------


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


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


def results_table(results: dict[str, Any]) -> str:
    rows = []
    for s in results["scenarios"]:
        c = s["checks"]
        cpu = s["cpu"]
        rows.append(
            [
                s["scenario"],
                _f(s["workers"]),
                (_f(s["rate_limit"], 0) + (" in any 1 s" if s.get("sliding") else ""))
                if s["rate_limit"]
                else "-",
                _f(s["wall_s"], 1),
                _f(s["limit_s"], 1),
                _f(s["wall_vs_limit"]),
                _f(s["fanned_out_s"], 1),
                f"{s['invocation_wall_s'] / s['invocations']:.2f} / {_api_per_window(s):.2f}",
                f"{s['requests']:,} / {s['pages']:,}",
                f"{s['throttled_share']:.2%}",
                _f(s["max_rate_5s"], 1),
                _f(s["invocations"]),
                _f(c["hops"]),
                _f(c["backoffs"]),
                _f(s["redelivered"]),
                " / ".join(
                    f"{cpu[k]:,.0f}" for k in ("exporter_s", "moto_s", "fake_api_and_bench_s")
                ),
                f"{cpu['others_s']:,.0f}",
                "yes" if c["ok"] else "NO",
            ]
        )
    return _table(
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


def targets_table(results: dict[str, Any]) -> str:
    rows = [[t["name"], "MET" if t["met"] else "NOT MET", t["figure"]] for t in results["targets"]]
    return _table(["target", "verdict", "figure"], rows)


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
            + _table(
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
            results_table(results),
            "### Reading the figures",
            reading(results),
            "### Targets",
            targets_table(results),
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
    return "\n\n".join([results_table(results), targets_table(results)])

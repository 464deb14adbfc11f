"""The scale plot (SVG written here: no plotting library in the dev set): wall time
against pollers per workload, with the API-bound limit."""

from __future__ import annotations

import math
from typing import Any


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

"""What both benchmarks share: paths, the machine and source record, signals, and
the markdown tables of their reports.

Importing it puts functions/exporter on `sys.path` (the benchmarks import `app`
and `exporter` as Lambda does). A script run as `python bench/X.py` first puts
the repository root there itself, to be able to import this module.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXPORTER_DIR = ROOT / "functions" / "exporter"
if str(EXPORTER_DIR) not in sys.path:
    sys.path.insert(0, str(EXPORTER_DIR))

PY = sys.executable
REGION = "us-east-1"


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops every process


def stop_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP end the benchmark through its `finally` blocks."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu_model": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": now_text(),
    }


def source_state() -> dict[str, Any]:
    """Which exporter code was measured: HEAD, uncommitted changes, a hash of the sources."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
            )
        except OSError:
            return ""
        return done.stdout.strip()

    digest = hashlib.sha256()
    for path in sorted(EXPORTER_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return {
        "git_head": git("rev-parse", "HEAD"),
        "uncommitted": git("status", "--porcelain", "--", "functions", "local").splitlines(),
        "exporter_sha256": digest.hexdigest(),
    }


def compile_sources() -> None:
    """Byte-compile the repository's own code (the exporter, local, bench) before any
    measured child imports it.

    Site-packages were compiled when they were installed; this code is compiled
    when first imported, and where PYTHONDONTWRITEBYTECODE is set (or a merge left
    the .pyc files stale) every child compiled the exporter's modules from source
    again, about 0.3 s of CPU charged to the exporter and never to the baselines
    (docs/performance.md, "CPU at the floor").
    """
    dirs = [str(ROOT / name) for name in ("functions", "local", "bench")]
    subprocess.run([PY, "-m", "compileall", "-q", *dirs], cwd=ROOT, check=True)


def function_memory_mb() -> int:
    """`FunctionMemory`'s default in template.yaml (CloudFormation tags defeat yaml.safe_load)."""
    text = (ROOT / "template.yaml").read_text()
    found = re.search(r"^  FunctionMemory:\n(?:    .*\n)*?    Default: (\d+)", text, re.M)
    if not found:
        raise RuntimeError("template.yaml: no FunctionMemory parameter with a Default")
    return int(found.group(1))


# -- markdown ------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 2) -> str:
    """A figure as a table cell: '-' for none, thousands separated."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)

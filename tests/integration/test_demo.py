"""`make demo` works end to end: the README's first command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_and_cleans_up() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "local.demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, (out + proc.stderr)[-3000:]
    assert "from checkpoint" in out  # the backfill really took several hops
    assert out.count("wifi-export succeeded:") == 3  # backfill + two nightly runs
    assert "brand_id=1234/dt=2023-06-12" in out
    assert "avg_dwell_min" in out and "rows in 13 partitions" in out
    assert "Demo finished" in out

"""`make demo` works end to end: the README's first command."""

from __future__ import annotations

import re
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
    # What a person types is the CLI (issue 15): run --follow, cancel, status, runs.
    assert "$ wifi-export run --brand 1234 --from 2023-06-01 --to 2023-06-12 --follow" in out
    hops = re.search(r"\(exit 0; (\d+) invocations of the function\)", out)
    assert hops is not None and int(hops.group(1)) > 3  # several hops per window
    assert "$ wifi-export cancel " in out and "$ wifi-export runs" in out
    assert "(exit 1: the run was cancelled, nothing committed)" in out
    # The selection rerun: three stores from it, the others (but dark ones) still from
    # the backfill, nothing twice.
    assert "--locations 123400001,123400002,123400003 --follow" in out
    owners = sorted(map(int, re.findall(r"b1234-\w+: +(\d+) locations", out)))
    assert owners[0] == 3 and 110 <= owners[1] <= 117, owners
    assert "rows counted twice: 0)" in out
    # backfill + selection + the local run + two nightly runs
    assert out.count("wifi-export succeeded:") == 5
    assert out.count("wifi-export cancelled:") == 1
    # Honest logs: no JSON log record between the demo's lines, none above INFO.
    assert '"level"' not in out and '"_aws"' not in out
    assert "0 WARNING, 0 ERROR" in out
    # One UTC and one local run side by side, each queried in its own basis.
    assert "--to 2023-06-05 --local-time --follow" in out
    assert "brand_id=1234/time_basis=utc/dt=2023-06-12" in out
    assert "brand_id=1234/time_basis=local/dt=2023-06-05" in out
    assert "AND time_basis = 'utc'" in out and "AND time_basis = 'local'" in out
    # The summary counts the (brand, basis, day) partitions the listing above it shows:
    # 12 UTC days of 1234, 5 local ones, and the nightly day of both brands.
    listed = re.findall(r"^  brand_id=\d+/time_basis=\w+/dt=\S+ +\d+ object", out, re.MULTILINE)
    assert "avg_dwell_min" in out and "utc_visits local_visits" in out
    assert f"rows in {len(listed)} partitions (brand, basis, day)" in out, listed
    assert len(listed) == 19
    assert "Demo finished" in out
    # The lake coverage calendar: the backfill's twelve days, the rest of June missing.
    assert "$ wifi-export coverage --brand 1234 --from 2023-06-01 --to 2023-06-30" in out
    assert "June 2023" in out and "missing: 2023-06-" in out
    assert "changes={'days': {}}" in out  # the selection rerun: the same numbers again

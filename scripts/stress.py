#!/usr/bin/env python3
"""The whole suite, several times in a row, with every core kept busy (`make stress`).

A test that passes on an idle machine and fails on a loaded one is a flaky test, and
CI machines are loaded. This starts one CPU hog per core (a busy loop in its own
process, at the suite's priority, like `stress --cpu N`), then runs `make pytest`
RUNS times, no retry: the first failing run ends it, with exit status 1.

    python scripts/stress.py                  # 3 runs, one hog per core
    python scripts/stress.py --runs 1 --hogs 4 -- -k test_cli

The lines it prints (one per run: wall time, the load average, pytest's summary) go
into docs/reliability.md's "Under load" table.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOG = "while True:\n    pass\n"


def summary_line(output: str) -> str:
    """pytest's last `== ... in N s ==` line, or the tail when there is none."""
    lines = [ln.strip("= ") for ln in output.splitlines() if re.match(r"^=+ .* in [\d.]+s", ln)]
    return lines[-1] if lines else output.strip().splitlines()[-1] if output.strip() else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--log", type=Path, default=Path("stress.log"))
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    args = parser.parse_args(argv)

    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(args.hogs)]
    status = 0
    try:
        with args.log.open("w") as log:
            for run in range(1, args.runs + 1):
                started = time.monotonic()
                done = subprocess.run(
                    ["make", "--no-print-directory", "pytest",
                     f"PYTEST_ARGS={' '.join(args.pytest_args)}"],
                    cwd=ROOT, capture_output=True, text=True, check=False,
                )  # fmt: skip
                wall = time.monotonic() - started
                log.write(done.stdout + done.stderr)
                log.flush()
                load = os.getloadavg()[1]
                line = (
                    f"run {run}/{args.runs}: exit {done.returncode}, {wall / 60:.1f} min, "
                    f"load average (5 min) {load:.1f}, {args.hogs} hogs: "
                    f"{summary_line(done.stdout)}"
                )
                print(line, flush=True)
                if done.returncode != 0:
                    print(f"run {run} failed; its output is in {args.log}", file=sys.stderr)
                    status = 1
                    break
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    return status


if __name__ == "__main__":
    raise SystemExit(main())

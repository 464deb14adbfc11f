"""`make sandbox`'s Python entry (`python -m local.sandbox`) started in the background,
as a person starts it in a first shell; the environment it writes, as a second shell
reads it (`set -a; . ./.sandbox.env; set +a`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Sandbox:
    env_file: Path
    proc: subprocess.Popen[str]

    def shell(self, line: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """One command line in a second shell set up as the README says."""
        script = f"set -a; . {self.env_file}; set +a; . .venv/bin/activate; {line}"
        return subprocess.run(
            ["bash", "-c", script],
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def start_sandbox(tmp: Path) -> Iterator[Sandbox]:
    if not (ROOT / ".venv" / "bin" / "activate").exists():
        pytest.skip("no .venv: `make install` first")
    env_file = tmp / ".sandbox.env"
    log = (tmp / "sandbox.out").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.sandbox", "--env-file", str(env_file)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not env_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp / "sandbox.out").read_text()[-3000:])
            time.sleep(0.2)
        yield Sandbox(env_file, proc)
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert not env_file.exists(), "the sandbox left its .sandbox.env behind"
    assert "sandbox stopped" in (tmp / "sandbox.out").read_text()

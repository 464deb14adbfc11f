"""The CLI in a real terminal, as a person sees it: tmux (from Debian's packages; `.ci/run`
installs it) runs a shell 80 columns wide against `make sandbox`'s stack; the test types
with `send-keys` and reads the screen with `capture-pane`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.cli.sandbox_fixture import ROOT, Sandbox, start_sandbox

COLUMNS = 80
RUN_ID = re.compile(r"\d{8}T\d{9}Z-b\d+-[0-9a-f]{8}")

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None,
    reason="tmux is not installed (`.ci/run` installs it: apt-get install tmux)",
)


class Terminal:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    def type(self, line: str) -> None:
        self.tmux("send-keys", "-t", "t", "-l", line)
        self.tmux("send-keys", "-t", "t", "Enter")

    def screen(self) -> str:
        """What is on the screen now, wrapped lines joined (-J) so a long line shows."""
        return self.tmux("capture-pane", "-t", "t", "-p", "-J", "-S", "-200")

    def run(self, line: str, timeout: float = 240) -> str:
        """Type `line`, wait for its prompt to come back; the screen since the command."""
        self.type("clear")
        self.type(f"{line}; echo EXIT=$?")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if re.search(r"^EXIT=\d+", screen, re.MULTILINE):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{line!r} did not finish:\n{self.screen()}")


@pytest.fixture(scope="module")
def terminal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
    tmp = tmp_path_factory.mktemp("terminal")
    for sandbox in start_sandbox(tmp):
        yield from _terminal(sandbox)


def _terminal(sandbox: Sandbox) -> Iterator[Terminal]:
    term = Terminal(f"wifi-export-test-{os.getpid()}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TMUX"))}
    subprocess.run(
        [
            *("tmux", "-L", term.socket, "-f", "/dev/null", "new-session", "-d", "-s", "t"),
            *("-x", str(COLUMNS), "-y", "50", "bash --norc --noprofile"),
        ],
        env={**env, "TERM": "xterm-256color"},
        cwd=ROOT,
        check=True,
        timeout=30,
    )
    try:
        term.type(f"set -a; . {sandbox.env_file}; set +a; . .venv/bin/activate; PS1='$ '")
        yield term
    finally:
        subprocess.run(["tmux", "-L", term.socket, "kill-server"], check=False, timeout=30)


def assert_fits(screen: str) -> None:
    """What the command printed (after the line typed) fits the terminal, uncut."""
    printed = screen.rsplit("echo EXIT=$?\n", 1)[-1]
    for line in printed.splitlines():
        assert len(line.rstrip()) <= COLUMNS, f"wider than {COLUMNS} columns: {line!r}"
    assert "…" not in screen, f"something was cut:\n{screen}"
    assert "\x1b" not in screen and "[/" not in screen and "[bold" not in screen, screen


def test_run_follow_bar_moves_and_ends(terminal: Terminal) -> None:
    terminal.type("clear")
    terminal.type(
        "wifi-export run --brand 1234 --from 2023-06-01 --to 2023-06-12 --follow "
        "--interval 0.2; echo EXIT=$?"
    )
    seen: list[int] = []
    deadline = time.monotonic() + 240
    screen = ""
    while time.monotonic() < deadline:
        screen = terminal.screen()
        bar = re.search(r"(\d)/3 +[\d,]+ rows", screen)
        if bar and (not seen or seen[-1] != int(bar.group(1))):
            seen.append(int(bar.group(1)))
        if re.search(r"^EXIT=\d+", screen, re.MULTILINE):
            break
        time.sleep(0.05)
    assert "EXIT=0" in screen, screen
    assert seen == sorted(seen) and len(seen) >= 2 and seen[-1] == 3, seen  # it moved, and ended
    assert "succeeded" in screen
    assert_fits(screen)


def test_status_and_runs_fit_80_columns(terminal: Terminal) -> None:
    screen = terminal.run("wifi-export runs --last 5")
    assert "EXIT=0" in screen
    assert_fits(screen)
    run_ids = RUN_ID.findall(screen)
    assert run_ids, screen  # whole run ids, never cut
    status = terminal.run(f"wifi-export status {run_ids[0]}")
    assert "EXIT=0" in status and run_ids[0] in status
    assert "manifest" in status and f"{run_ids[0]}.manifest.json" in re.sub(r"\n\s+", "", status)
    assert_fits(status)

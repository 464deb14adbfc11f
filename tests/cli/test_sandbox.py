"""`make sandbox` in one shell, the README's "Try it locally" lines in another, as printed.

The only liberty taken: `./.sandbox.env` is the test's own copy (a developer's
sandbox may be running in the checkout). Each line must exit as its comment says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.sandbox_fixture import ROOT, Sandbox, start_sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    yield from start_sandbox(tmp_path_factory.mktemp("sandbox"))


def readme_lines() -> list[tuple[str, int]]:
    """The `$ wifi-export ...` lines of "Try it locally", with the exit code each expects."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Try it locally", 1)[1].split("\n## ", 1)[0]
    block = section.split("```console", 1)[1].split("```", 1)[0]
    lines = [line.removeprefix("$ ") for line in block.strip().splitlines()]
    assert lines[:2] == ["set -a; . ./.sandbox.env; set +a", ". .venv/bin/activate"], lines
    found = []
    for line in lines[2:]:
        expected = re.search(r"# exit (\d+)", line)
        found.append((line, int(expected.group(1)) if expected else 0))
    return found


def test_the_readme_walkthrough_works_as_printed(sandbox: Sandbox) -> None:
    lines = readme_lines()
    assert len(lines) >= 8
    outputs = []
    for line, code in lines:
        done = sandbox.shell(line)
        assert done.returncode == code, f"{line}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        outputs.append(done.stdout + done.stderr)
    by_line = dict(zip((line for line, _ in lines), outputs, strict=True))
    follow = next(o for line, o in by_line.items() if "--follow" in line and "run " in line)
    assert "succeeded" in follow and "3/3" in follow
    cancelled = next(o for line, o in by_line.items() if line.startswith("wifi-export status"))
    assert "cancelled" in cancelled
    listed = by_line["wifi-export runs"]
    assert listed.count("succeeded") >= 2 and "cancelled" in listed
    query = next(o for line, o in by_line.items() if line.startswith("wifi-export query"))
    assert "3 row(s)" in query and re.search(r"2023-06-01 +1[01]\d +\d+", query), query
    flag = next(o for line, o in by_line.items() if "--zero-fill" in line)
    assert "--zero-fill: only applies to a selection" in flag


def test_the_sandbox_writes_what_a_second_shell_needs(sandbox: Sandbox) -> None:
    exports = sandbox.env_file.read_text()
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA", "AWS_REGION", "BUCKET_NAME"):
        assert f"export {name}=" in exports
    assert ".sandbox.env" in (ROOT / ".gitignore").read_text().splitlines()
    assert isinstance(sandbox.env_file, Path)


def test_a_sample_event_through_make_invoke(sandbox: Sandbox) -> None:
    """events/scheduled.json, as the README offers it, on the sandbox: accepted today."""
    done = sandbox.shell("make -s invoke EVENT=events/scheduled.json")
    assert done.returncode == 0, done.stdout + done.stderr
    runs = json.loads(done.stdout)["runs"]
    assert sorted(r["brandId"] for r in runs) == [777, 1234]

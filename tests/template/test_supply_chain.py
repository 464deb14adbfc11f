"""The dependency pins: the layer's hashed full lock, and the pinned tool sets.

layers/requirements.txt is what `sam build` builds the Lambda layer from and
what `make install` puts in the dev virtualenv (tests/package checks the built
layer against it). These tests need no network: completeness of the lock is
checked against the metadata of the same versions installed in this virtualenv.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "layers" / "requirements.txt"
DIRECT = ROOT / "layers" / "requirements.in"
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)")


def _logical_lines(path: Path) -> list[str]:
    """Requirement lines with continuations joined and comments dropped."""
    text = path.read_text().replace("\\\n", " ")
    lines = (line.split(" #", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in _logical_lines(path):
        match = PIN.match(line)
        assert match, f"{path.name}: not an exact pin: {line!r}"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_the_layer_lock_pins_and_hashes_every_requirement() -> None:
    lines = _logical_lines(LOCK)
    assert lines
    for line in lines:
        match = PIN.match(line)
        assert match, line
        hashes = re.findall(r"--hash=sha256:([0-9a-f]+)", line)
        assert hashes, f"no hash: {line.split()[0]}"
        assert all(len(h) == 64 for h in hashes)
        # Nothing but the pin and its hashes: no URL, index or editable.
        rest = re.sub(r"--hash=sha256:[0-9a-f]{64}", "", line[match.end() :])
        assert not rest.strip(), line


def test_the_direct_requirements_are_in_the_lock() -> None:
    direct, lock = _pins(DIRECT), _pins(LOCK)
    assert direct
    assert {name: lock.get(name) for name in direct} == direct


def test_the_lock_is_closed_under_dependencies() -> None:
    """Every dependency of every locked package is locked: nothing floats."""
    lock = _pins(LOCK)
    env = {name: str(value) for name, value in default_environment().items()}
    env["extra"] = ""
    missing = {}
    for name, version in lock.items():
        dist = metadata.distribution(name)
        assert dist.version == version, f"{name}: {dist.version} installed, {version} locked"
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            dep = canonicalize_name(req.name)
            if dep not in lock:
                missing[dep] = name
            else:
                assert req.specifier.contains(lock[dep], prereleases=True), (name, raw)
    assert not missing, f"dependencies outside the lock (run make layer-lock): {missing}"


def test_the_dev_constraints_agree_with_the_lock() -> None:
    constraints = _pins(ROOT / "constraints.txt")
    lock = _pins(LOCK)
    assert {name: constraints.get(name) for name in lock} == lock


def test_tool_sets_are_fully_pinned() -> None:
    for name in ("requirements-sam.txt", "requirements-checkov.txt", "constraints.txt"):
        assert _pins(ROOT / name)
    checkov = _pins(ROOT / "requirements-checkov.txt")
    makefile = (ROOT / "Makefile").read_text()
    version = re.search(r"^CHECKOV_VERSION\s*\?=\s*(\S+)", makefile, re.MULTILINE)
    assert version and checkov["checkov"] == version.group(1)


def test_pip_itself_is_pinned() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--upgrade pip" not in makefile
    assert re.search(r"^PIP_VERSION\s*\?=\s*\d+(\.\d+)+\s*$", makefile, re.MULTILINE)
    # Every virtualenv rule installs that pip before anything else.
    for venv in ("$(PY)", "$(SAM_VENV)/bin/python", "$(CHECKOV_VENV)/bin/python"):
        assert f"{venv} -m pip install -q --disable-pip-version-check pip==$(PIP_VERSION)" in (
            makefile
        ), venv
    # The layer's lock goes in by a hash-checked pip call of its own.
    assert "--require-hashes -r layers/requirements.txt" in makefile
    dev = _logical_lines(ROOT / "requirements-dev.txt")
    assert not [line for line in dev if line.startswith(("-r", "--requirement"))]

"""The dependencies layer fits its budget on both Lambda architectures.

The locked set (layers/requirements.txt, hash-checked) is downloaded from PyPI
as the wheels Lambda's python3.12 (Amazon Linux 2023, glibc 2.34) would get for
x86_64 and for arm64, and measured unpacked: the layer may grow to 120 MB, no
more (docs/decisions.md, "The Parquet library"; Lambda allows 250 MB for the
function and all its layers together). pip's cache makes a second run quick.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "layers" / "requirements.txt"
BUDGET_BYTES = 120_000_000
# Wheels Amazon Linux 2023 runs: glibc 2.34 and older.
GLIBC = ("2014", "2_17", "2_24", "2_26", "2_27", "2_28", "2_31", "2_34")


def _platforms(arch: str) -> list[str]:
    tags = [f"manylinux{g}_{arch}" if g == "2014" else f"manylinux_{g}_{arch}" for g in GLIBC]
    return [arg for tag in tags for arg in ("--platform", tag)]


def unpacked_bytes(wheels: list[Path]) -> int:
    """What the wheels take once installed: the sum of their members' sizes."""
    total = 0
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            total += sum(info.file_size for info in archive.infolist())
    return total


@pytest.fixture(scope="module", params=["x86_64", "aarch64"])
def layer_wheels(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> list[Path]:
    arch: str = request.param
    dest = tmp_path_factory.mktemp(f"layer-{arch}")
    # PyPI's files only, as `make layer-lock` hashed them: the machine's pip
    # configuration (local indexes, find-links) is left out.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--disable-pip-version-check",
            "--require-hashes",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            *_platforms(arch),
            "-r",
            str(LOCK),
            "-d",
            str(dest),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sorted(dest.glob("*.whl"))


def test_every_locked_package_has_a_wheel_for_the_architecture(layer_wheels: list[Path]) -> None:
    locked = [
        line.split("==")[0].lower().replace("-", "_")
        for line in LOCK.read_text().splitlines()
        if line and line[0].isalnum()
    ]
    names = {wheel.name.split("-")[0].lower() for wheel in layer_wheels}
    assert names == set(locked)


def test_the_layer_fits_the_budget_unpacked(layer_wheels: list[Path]) -> None:
    size = unpacked_bytes(layer_wheels)
    print(f"layer unpacked: {size / 1e6:.1f} MB for {layer_wheels[0].parent.name}")
    assert size <= BUDGET_BYTES, f"{size / 1e6:.1f} MB > {BUDGET_BYTES / 1e6:.0f} MB"
    # The Parquet library is in it (a layer without it would pass too easily).
    assert any(w.name.startswith("arro3_io-") for w in layer_wheels)

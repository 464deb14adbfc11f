"""The claims table of docs/reliability.md holds: every documented guarantee names tests
that exist and a planted bug of `make mutants` that runs them; the cheapest planted
bugs are caught on every run of the suite."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from hypothesis import settings

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "reliability.md"


@dataclass(frozen=True)
class Claim:
    text: str
    tests: tuple[str, ...]
    mutants: tuple[str, ...]


def claims() -> list[Claim]:
    doc = TABLE.read_text()
    body = doc.split("<!-- claims:begin -->", 1)[1].split("<!-- claims:end -->", 1)[0]
    found = []
    for line in body.strip().splitlines()[2:]:  # after the header and its rule
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 4, f"a claims row has 4 cells: {line}"
        text, _said, tests, mutants = cells
        found.append(
            Claim(
                text,
                tuple(re.findall(r"`([^`]+)`", tests)),
                tuple(re.findall(r"`([^`]+)`", mutants)),
            )
        )
    return found


def _quoted(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


@cache
def specs() -> ModuleType:
    path = ROOT / "scripts" / "mutant_specs.py"
    spec = importlib.util.spec_from_file_location("mutant_specs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("mutant_specs", module)
    spec.loader.exec_module(module)
    return module


def defined(node_id: str) -> bool:
    """Whether `path::name` (or `path::Class::name`, any `[params]` dropped) is a test
    function of that file, read with `ast` (nothing is imported or collected)."""
    path, *names = node_id.split("[", 1)[0].split("::")
    file = ROOT / path
    if not file.is_file() or not names:
        return False
    scope: list[ast.stmt] = ast.parse(file.read_text()).body
    for name in names:
        match = [
            n for n in scope if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == name
        ]
        if not match:
            return False
        scope = match[0].body if isinstance(match[0], ast.ClassDef) else []
    return names[-1].startswith("test")


def test_the_table_lists_enough_claims_each_with_tests_and_a_mutant() -> None:
    table = claims()
    assert len(table) >= 15
    for claim in table:
        assert claim.tests, f"no test guards: {claim.text}"
        assert len(claim.mutants) == 1, f"one mutant per claim: {claim.text}"
    assert len({c.text for c in table}) == len(table)


def test_every_listed_test_exists() -> None:
    missing = [t for claim in claims() for t in claim.tests if not defined(t)]
    assert not missing, f"listed tests that do not exist: {missing}"


def test_the_mutants_are_the_table_s_and_run_its_tests() -> None:
    mutants = {m.name: m for m in specs().MUTANTS}
    named = [name for claim in claims() for name in claim.mutants]
    assert sorted(named) == sorted(mutants), "every mutant in the table once, and only those"
    for claim in claims():
        (name,) = claim.mutants
        selected = [args[0] for args in mutants[name].tests]
        files = {t.split("::")[0] for t in claim.tests}
        assert any(s.split("::")[0] in files for s in selected), (
            f"{name} runs none of the tests of its claim: {claim.text}"
        )
    assert set(specs().CI_SAMPLE) <= set(mutants)


def test_the_reader_of_the_table_is_not_fooled() -> None:
    assert defined("tests/unit/test_claims.py::test_every_listed_test_exists")
    assert not defined("tests/unit/test_claims.py::test_that_is_not_there")
    assert not defined("tests/unit/nowhere.py::test_x")
    assert not defined("tests/unit/test_claims.py::claims")  # not a test


def test_the_hypothesis_profile_has_no_deadline() -> None:
    # tests/conftest.py: a loaded machine must not fail a property test for slowness.
    profile = settings.default
    assert profile is not None and profile.deadline is None


def test_the_cheapest_mutants_are_caught() -> None:
    sample = list(specs().CI_SAMPLE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "mutants.py"), "--sample"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-3000:]
    for name in sample:
        assert re.search(rf"^{re.escape(name)} \(.*\): KILLED", report, re.MULTILINE), report

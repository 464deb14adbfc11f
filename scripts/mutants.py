#!/usr/bin/env python3
"""Planted bugs the test suite must catch (`make mutants`).

Each mutant in MUTANTS (scripts/mutant_specs.py, one per claim of the claims table in
docs/reliability.md) plants one bug the suite claims to catch. For each:
copy the repository (tracked and untracked-but-not-ignored files, as they are in the
working tree) into a scratch directory, apply the mutant's edits there, run its pytest
selections in order (`pytest -x`, stopping at the first that fails), and expect a
FAIL. Each selection also runs once on an unmutated copy, before any mutant runs it,
and must pass, or the verdicts would mean nothing.

An edit names a file, an exact `old` snippet and its `new` replacement. The snippet
must occur exactly once in the file: if a file moved or the line was reworded the
runner stops with an error naming the mutant, rather than planting nothing and
calling the mutant killed. Retarget the spec (scripts/mutant_specs.py) then.

A mutant counts as killed only when pytest reports failed tests (exit code 1); an
import error, a selection that matches no test or an interrupted run is an error.

    python scripts/mutants.py                   # every mutant; exit 0 if all killed
    python scripts/mutants.py --list            # the specs
    python scripts/mutants.py --only plain-put  # some of them (repeatable)
    python scripts/mutants.py --sample          # the cheapest few (CI_SAMPLE)
    python scripts/mutants.py --code-from HEAD  # functions/ from a git revision

Exit status: 0 every mutant killed; 1 a mutant survived; 2 a spec does not apply,
or the unmutated selection fails.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", ".venv", ".aws-sam", "__pycache__", ".mypy_cache", ".ruff_cache"}


sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutant_specs import CI_SAMPLE, MUTANTS, Mutant  # noqa: E402

__all__ = ["CI_SAMPLE", "MUTANTS", "Mutant"]


# -- the runner ----------------------------------------------------------------------------


class SpecError(Exception):
    """A mutant that does not apply to the code as it is: retarget it."""


def repository_files(root: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files that exist in the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(
        f
        for f in set(listed.split("\0"))
        if f and (root / f).is_file() and not SKIP_DIRS.intersection(Path(f).parts)
    )


def copy_tree(root: Path, files: list[str], dest: Path, code_from: str | None) -> None:
    for name in files:
        if code_from and name.startswith("functions/"):
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    if code_from:
        archive = subprocess.run(
            ["git", "archive", code_from, "functions"], cwd=root, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    (dest / ".venv").symlink_to(root / ".venv")


def apply(mutant: Mutant, tree: Path) -> None:
    for edit in mutant.edits:
        path = tree / edit.path
        if not path.is_file():
            raise SpecError(f"{mutant.name}: {edit.path} does not exist (moved?)")
        text = path.read_text()
        found = text.count(edit.old)
        if found != 1:
            raise SpecError(
                f"{mutant.name}: {edit.path} holds the snippet {found} times, not once:\n"
                f"{edit.old.rstrip()}"
            )
        path.write_text(text.replace(edit.old, edit.new))


def environment(tree: Path) -> dict[str, str]:
    """The copy's code ahead of anything installed (the venv's editable install of the
    project points at the original checkout)."""
    env = {**os.environ, "CHAOS_SIZE": "ci", "PYTHONDONTWRITEBYTECODE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(tree / "functions" / "exporter"), str(tree)])
    env.pop("CHAOS_REPORT", None)
    return env


def check_imports_from(tree: Path) -> None:
    """The copy's `exporter` is the one imported, not the checkout's."""
    origin = subprocess.run(
        [str(tree / ".venv" / "bin" / "python"), "-c", "import exporter; print(exporter.__file__)"],
        cwd=tree,
        env=environment(tree),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(origin).resolve().is_relative_to(tree.resolve()):
        raise SpecError(f"the copy in {tree} imports exporter from {origin}")


def pytest(tree: Path, args: tuple[str, ...], log: Path) -> tuple[int, list[str], float]:
    env = environment(tree)
    started = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(
            [str(tree / ".venv" / "bin" / "python"), "-m", "pytest", "-q", "-x", "-rf",
             "-p", "no:cacheprovider", *args],
            cwd=tree,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode  # fmt: skip
    failed = re.findall(r"^FAILED (.+?)(?: - .*)?$", log.read_text(), re.MULTILINE)
    return code, failed, time.monotonic() - started


def _has_options(selection: tuple[str, ...]) -> bool:
    return any(arg.startswith("-") for arg in selection)


def print_specs(chosen: list[Mutant]) -> None:
    for m in chosen:
        print(f"{m.name}: {m.bug}")
        for e in m.edits:
            print(f"    {e.path}: {e.old.strip()[:70]!r} -> {e.new.strip()[:70]!r}")
        for selection in m.tests:
            print(f"    caught by: pytest {' '.join(selection)}")


def run(chosen: list[Mutant], scratch: Path, code_from: str | None, every: bool) -> int:
    files = repository_files(ROOT)
    print(f"scratch copies in {scratch} ({len(files)} files each)", flush=True)
    # Every spec must apply before anything runs.
    for m in chosen:
        copy_tree(ROOT, files, scratch / m.name, code_from)
        apply(m, scratch / m.name)
    baseline = scratch / "unmutated"
    copy_tree(ROOT, files, baseline, code_from)
    check_imports_from(baseline)
    # Each selection once: the plain test ids of every mutant in one pytest run now
    # (its start-up is most of a unit test's time), a selection with options (-k)
    # just before the first mutant that gets as far as it.
    passed: set[tuple[str, ...]] = set()

    def unmutated_passes(selection: tuple[str, ...]) -> bool:
        if selection in passed or not selection:
            return True
        log = scratch / f"unmutated-{len(passed)}.log"
        code, _, seconds = pytest(baseline, selection, log)
        shown = " ".join(selection) if _has_options(selection) else f"{len(selection)} test ids"
        print(f"unmutated: pytest {shown}: exit {code} [{seconds:.0f} s]", flush=True)
        if code != 0:
            print(log.read_text()[-3000:])
            print(f"an unmutated selection fails: fix that first: {selection}", file=sys.stderr)
            return False
        passed.add(selection)
        return True

    unique = list(dict.fromkeys(sel for m in chosen for sel in m.tests))
    if not unmutated_passes(tuple(a for sel in unique if not _has_options(sel) for a in sel)):
        return 2
    passed.update(sel for sel in unique if not _has_options(sel))
    verdicts: dict[str, set[int]] = {}
    for m in chosen:
        started, codes, notes = time.monotonic(), set(), []
        for n, selection in enumerate(m.tests):
            if not unmutated_passes(selection):
                return 2
            log = scratch / f"{m.name}-{n}.log"
            code, failed, _ = pytest(scratch / m.name, selection, log)
            codes.add(code)
            if code == 1:
                notes.append(f"killed by {', '.join(failed) or 'a failing test'}")
            elif code == 0:
                notes.append(f"not by pytest {' '.join(selection)}")
            else:
                notes.append(f"ERROR: pytest exit {code} (not a test failure), see {log}")
            if code != 0 and not every:
                break
        verdicts[m.name] = codes
        verdict = "KILLED" if 1 in codes else "SURVIVED" if codes == {0} else "ERROR"
        seconds = time.monotonic() - started
        print(f"{m.name} ({m.bug}): {verdict} [{seconds:.0f} s]", flush=True)
        for note in notes:
            print(f"    {note}", flush=True)
    if any(codes - {0, 1} for codes in verdicts.values()):
        return 2
    return 0 if all(1 in codes for codes in verdicts.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print the specs and stop")
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    parser.add_argument("--sample", action="store_true", help="the cheapest few (CI_SAMPLE)")
    parser.add_argument("--code-from", metavar="REV", help="take functions/ from a git revision")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    parser.add_argument(
        "--every", action="store_true", help="run every selection of a mutant, not up to a kill"
    )
    args = parser.parse_args(argv)
    if args.sample:
        args.only += CI_SAMPLE
    unknown = set(args.only) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutant(s) {sorted(unknown)}")
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.list:
        print_specs(chosen)
        return 0
    scratch = Path(tempfile.mkdtemp(prefix="wifi-export-mutants-"))
    try:
        return run(chosen, scratch, args.code_from, args.every)
    except SpecError as exc:
        print(f"mutant spec does not apply: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

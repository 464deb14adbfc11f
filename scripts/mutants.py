#!/usr/bin/env python3
"""Planted bugs the test suite must catch (`make mutants`).

Each mutant in MUTANTS plants one bug of a kind the suite claims to catch. For each:
copy the repository (tracked and untracked-but-not-ignored files, as they are in the
working tree) into a scratch directory, apply the mutant's edits there, run its pytest
selection, and expect it to FAIL. Before any mutant, the same selections run on an
unmutated copy and must pass, or the verdicts would mean nothing.

An edit names a file, an exact `old` snippet and its `new` replacement. The snippet
must occur exactly once in the file: if a file moved or the line was reworded the
runner stops with an error naming the mutant, rather than planting nothing and
calling the mutant killed. Retarget the spec (below, one entry per mutant) then.

A mutant counts as killed only when pytest reports failed tests (exit code 1); an
import error, a selection that matches no test or an interrupted run is an error.

    python scripts/mutants.py                   # every mutant; exit 0 if all killed
    python scripts/mutants.py --list            # the specs
    python scripts/mutants.py --only plain-put  # some of them (repeatable)
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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPORTER = "functions/exporter/exporter"
SKIP_DIRS = {".git", ".venv", ".aws-sam", "__pycache__", ".mypy_cache", ".ruff_cache"}


@dataclass(frozen=True)
class Edit:
    path: str  # relative to the repository root
    old: str  # must occur exactly once
    new: str


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: str  # the planted bug, in one line
    edits: tuple[Edit, ...]
    # The tests that must catch it: pytest runs, one per tuple of arguments (a `-k`
    # applies to its own run only). The mutant is killed when one of them fails.
    tests: tuple[tuple[str, ...], ...]


# -- the planted bugs -------------------------------------------------------------------
# Written against the code as of the ledger in exporter/run/ (commit.py, finish.py)
# and the adapters in exporter/aws.py. When one stops applying, retarget its edits.

MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        name="wrong-column",
        bug="bounces and walk_bys swapped: each metric lands in the other's column",
        edits=(
            Edit(
                f"{EXPORTER}/schema.py",
                '    ("bounces", "bounces"),\n',
                '    ("bounces", "walk_bys"),\n',
            ),
            Edit(
                f"{EXPORTER}/schema.py",
                '    ("walkBys", "walk_bys"),\n',
                '    ("walkBys", "bounces"),\n',
            ),
        ),
        tests=(
            ("tests/integration/test_export.py::test_on_demand_utc_multi_window",),
            ("tests/unit/test_rows.py::test_every_value_lands_once_in_its_row",),
            ("tests/chaos/test_api_faults.py", "-k", "test_api_faults and 502"),
        ),
    ),
    Mutant(
        name="plain-put",
        bug="put_if_absent without If-None-Match: markers, leases and step records overwrite",
        edits=(
            Edit(
                f"{EXPORTER}/aws.py",
                'Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*"',
                "Bucket=self.bucket, Key=key, Body=body, ContentType=content_type",
            ),
        ),
        tests=(
            ("tests/integration/test_adapters.py",),
            (
                "tests/integration/test_long_runs.py::"
                "test_two_windows_finishing_together_commit_once",
            ),
            ("tests/chaos/test_found_bugs.py::test_retried_on_demand_invocation_reuses_its_run",),
        ),
    ),
    Mutant(
        name="older-objects-left",
        bug="a rerun copies its objects in but leaves the older run's objects in its days",
        edits=(
            Edit(
                f"{EXPORTER}/run/commit.py",
                "        _settle(ctx, keys, dt, set(written[dt]), "
                "coverage=coverage, others=others)\n",
                "        pass  # mutant: older runs' objects stay\n",
            ),
        ),
        tests=(
            ("tests/integration/test_export.py::test_rerun_replaces_partitions",),
            ("tests/chaos/test_api_faults.py", "-k", "test_api_faults and 502"),
        ),
    ),
    Mutant(
        name="parquet-stale-after-selection",
        bug="a selection rerun commits its rows but leaves the days' Parquet objects as they were",
        edits=(
            Edit(
                f"{EXPORTER}/run/commit.py",
                "    _rebuild_parquet(ctx, keys, days, resumed=resumed, "
                "remaining_ms=remaining_ms)\n",
                "    if plan.selection is None:  # mutant: selections skip the Parquet table\n"
                "        _rebuild_parquet(ctx, keys, days, resumed=resumed, "
                "remaining_ms=remaining_ms)\n",
            ),
        ),
        tests=(
            (
                "tests/integration/test_parquet.py::"
                "test_whole_brand_then_a_selection_rerun_leave_both_tables_equal",
            ),
        ),
    ),
    Mutant(
        name="failed-run-commits-part",
        bug="a failed run copies the steps it recorded into the table",
        edits=(
            Edit(
                f"{EXPORTER}/run/finish.py",
                "    elif failure is not None:\n        subject, body = notify.failure_message(",
                "    elif failure is not None:\n"
                "        keys = ctx.keys(plan)  # mutant\n"
                "        for record in ledger.step_records(plan):\n"
                "            for obj in record.objects:\n"
                "                target = keys.data_object(record.window, record.step, obj.dt)\n"
                "                ctx.store.copy(obj.key, target)\n"
                "        subject, body = notify.failure_message(",
            ),
        ),
        tests=(
            (
                "tests/integration/test_export.py::"
                "test_failed_run_commits_nothing_and_keeps_earlier_data",
            ),
            ("tests/chaos/test_api_faults.py", "-k", "test_api_faults and 400"),
        ),
    ),
    Mutant(
        name="resumed-commit-loses-rows",
        bug="a commit taken over after a kill skips the days the dead holder had begun",
        edits=(
            Edit(
                f"{EXPORTER}/run/commit.py",
                "    each_at_once(lambda copy: ctx.store.copy(copy[1], copy[2]), copies)\n",
                "    begun = {  # mutant: days that hold one of this run's objects are done\n"
                "        c[0] for c in copies\n"
                "        if any(keys.run_id in k\n"
                "               for k in ctx.store.list_keys(keys.partition(c[0])))\n"
                "    }\n"
                "    todo = [c for c in copies if c[0] not in begun]\n"
                "    each_at_once(lambda copy: ctx.store.copy(copy[1], copy[2]), todo)\n",
            ),
        ),
        tests=(
            ("tests/chaos/test_kills.py", "-k", "test_killed and half"),
            ("tests/chaos/test_sigkill.py", "-k", "commit"),
        ),
    ),
)


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
    for m in chosen:
        for n, selection in enumerate(m.tests):
            log = scratch / f"unmutated-{m.name}-{n}.log"
            code, _, seconds = pytest(baseline, selection, log)
            print(f"unmutated: pytest {' '.join(selection)}: exit {code} [{seconds:.0f} s]")
            if code != 0:
                print(log.read_text()[-3000:])
                print(f"the unmutated selection of {m.name} fails: fix that first", file=sys.stderr)
                return 2
    verdicts: dict[str, set[int]] = {}
    for m in chosen:
        started, codes, notes = time.monotonic(), set(), []
        for n, selection in enumerate(m.tests):
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
    parser.add_argument("--code-from", metavar="REV", help="take functions/ from a git revision")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    parser.add_argument(
        "--every", action="store_true", help="run every selection of a mutant, not up to a kill"
    )
    args = parser.parse_args(argv)
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

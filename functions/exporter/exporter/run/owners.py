"""Which run wrote an object of a partition: by record, never by name alone.

An object's name says which run it claims (`<runId>-w<n>-s<n>.json.gz`), but anyone
able to write to the bucket can choose a name. The commit replaces or rewrites an
object only if a record of ours names it (docs/contracts.md, "S3 layout"):

- the claimed run's plan exists (`runs/<id>/plan.json`, kept StateRetentionDays) for
  the partition's brand and time basis, covers the object's day and has its window;
- or, once the plan has expired, the run's long-lived manifest (`history/`, kept
  HistoryRetentionDays) lists the key.

Anything else is foreign: left alone and reported (`foreignObjects`). A run id
stamped later than now (plus a little clock skew) is refused outright: no run of
ours can have started in the future, and a newest-wins commit would let it win.
"""

from __future__ import annotations

import re
import threading
from datetime import date
from typing import Final

from exporter.errors import InvalidTask
from exporter.run.context import RunContext
from exporter.run.keys import RunKeys
from exporter.run.records import RUN_ID_PATTERN, RunPlan, is_run_id

# How many foreign keys the manifest and the notification list (the count is exact).
MAX_LISTED: Final = 20

_NAME_RE: Final = re.compile(rf"({RUN_ID_PATTERN})-w(\d{{1,6}})-s(\d{{1,9}})\.json\.gz", re.ASCII)


class Owners:
    """Resolves the owners of a commit's partitions; reads each run's record once,
    also when the commit's days ask for it side by side (one read, the others wait)."""

    def __init__(self, ctx: RunContext, keys: RunKeys) -> None:
        self._ctx = ctx
        self._keys = keys
        self._now = ctx.clock()
        self._plans: dict[str, RunPlan | None] = {}
        self._history: dict[str, frozenset[str]] = {}
        self._guard = threading.Lock()
        self._reading: dict[tuple[str, str], threading.Lock] = {}

    def owner(self, key: str, dt: str) -> str | None:
        """The run that wrote `key` (in partition `dt`) by record; None: foreign."""
        match = _NAME_RE.fullmatch(key.rsplit("/", 1)[-1])
        if match is None:
            return None
        run_id, window = match.group(1), int(match.group(2))
        if run_id == self._keys.run_id:
            return run_id
        if not is_run_id(run_id, self._now) or f"-b{self._keys.brand_id}-" not in run_id:
            return None
        plan = self._plan(run_id)
        if plan is not None:
            day = date.fromisoformat(dt)
            named = (
                plan.run_id == run_id
                and plan.brand_id == self._keys.brand_id
                and plan.basis == self._keys.basis
                and plan.first_day <= day <= plan.last_day
                and window < len(plan.windows)
            )
            return run_id if named else None
        return run_id if key in self._history_keys(run_id) else None

    def _once(self, kind: str, run_id: str) -> threading.Lock:
        """Held while one record of a run is read: a second reader waits for the first."""
        with self._guard:
            return self._reading.setdefault((kind, run_id), threading.Lock())

    def _plan(self, run_id: str) -> RunPlan | None:
        with self._once("plan", run_id):
            return self._read_plan(run_id)

    def _read_plan(self, run_id: str) -> RunPlan | None:
        if run_id not in self._plans:
            try:
                self._plans[run_id] = self._ctx.ledger.plan(run_id)
            except (InvalidTask, ValueError, KeyError, TypeError):
                self._plans[run_id] = None  # no plan, or none we wrote: names nothing
        return self._plans[run_id]

    def _history_keys(self, run_id: str) -> frozenset[str]:
        with self._once("history", run_id):
            return self._read_history(run_id)

    def _read_history(self, run_id: str) -> frozenset[str]:
        if run_id not in self._history:
            keys: set[str] = set()
            try:
                doc = self._ctx.ledger.history_manifest(run_id) or {}
                for part in doc.get("partitions", ()):
                    keys.update(k for k in part.get("keys", ()) if isinstance(k, str))
            except (ValueError, AttributeError, TypeError):
                keys = set()
            self._history[run_id] = frozenset(keys)
        return self._history[run_id]


def foreign_summary(keys: list[str]) -> dict[str, object]:
    """The manifest's and the notification's `foreignObjects`: a count and some keys."""
    ordered = sorted(keys)
    return {"count": len(ordered), "keys": ordered[:MAX_LISTED]}

"""The ledger's status and history documents (docs/contracts.md, "Status"): part of
the ledger (`exporter.run.ledger.Ledger` inherits them), kept apart for size."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from exporter import json_codec
from exporter.observability import logger
from exporter.ports import Clock, ObjectStore
from exporter.run.keys import Layout, RunKeys
from exporter.run.parallel import at_once, each_at_once
from exporter.run.readings import (
    RunDocuments,
    cancel_request_in,
    iso,
    status_document,
    windows_done_if_running,
)
from exporter.run.records import RunPlan

# Attempts of one compare-and-swap status write before giving up on it (a later
# write brings it up to date; the done markers are the truth).
_STATUS_TRIES: Final = 5


class StatusBook:
    """Status (compare-and-swap while running, final once) and the history index."""

    _store: ObjectStore
    _clock: Clock
    layout: Layout

    def keys(self, plan: RunPlan) -> RunKeys:
        return self.layout.run(plan.run_id, plan.brand_id, plan.basis)

    def windows_done(self, keys: RunKeys) -> int:
        return sum(1 for _ in self._store.list_keys(keys.done_prefix))

    def now_iso(self) -> str:
        return iso(self._clock())

    def _status(self, plan: RunPlan, state: str, done: int, extra: dict[str, Any]) -> bytes:
        return status_document(plan, state, done, self.now_iso(), extra)

    def announce(self, plan: RunPlan) -> None:
        """A new run: its first status and its history entry (no read: neither exists)."""
        keys = self.keys(plan)
        body = self._status(plan, "running", 0, {})
        _, first = at_once(
            lambda: self._store.put(keys.history, body),
            lambda: self._store.put_if_absent(keys.status, body),
        )
        if not first:
            self.report_progress(plan, windows_done=0)

    def report_final(self, plan: RunPlan, state: str, windows_done: int, **extra: Any) -> None:
        """The final state, written once by the finisher under the lease: it wins."""
        keys = self.keys(plan)
        body = self._status(plan, state, windows_done, extra)
        at_once(
            lambda: self._store.put(keys.status, body),
            lambda: self._store.put(keys.history, body),
        )

    def report_progress(
        self, plan: RunPlan, *, windows_done: int | None = None, **extra: Any
    ) -> None:
        """A "running" status, compare-and-swap: never over a final state, never lower."""
        keys = self.keys(plan)
        done = self.windows_done(keys) if windows_done is None else windows_done
        for _ in range(_STATUS_TRIES):
            current = self._store.get_versioned(keys.status)
            if current is None:
                body = self._status(plan, "running", done, extra)
                if self._store.put_if_absent(keys.status, body):
                    return
                continue
            raw, etag = current
            counted = windows_done_if_running(raw)
            if counted is None:
                return  # ended meanwhile: a late progress write must not reopen it
            done = max(done, counted)  # a concurrent writer may have listed more
            body = self._status(plan, "running", done, extra)
            if self._store.put_if_match(keys.status, body, etag):
                return
        logger.info("status not updated: concurrent writers", extra={"run_id": plan.run_id})

    def documents(self, keys: RunKeys) -> RunDocuments:
        """A run's plan, status, history entry and cancel request, read side by side."""
        plan, status, history, cancel = each_at_once(
            self._doc, [keys.plan, keys.status, keys.history, keys.cancel]
        )
        return RunDocuments(plan, status, history, cancel_request_in(cancel))

    def history_entry(self, keys: RunKeys) -> dict[str, Any] | None:
        return self._doc(keys.history)

    def history_manifest(self, run_id: str) -> dict[str, Any] | None:
        return self._doc(self.layout.history_manifest(run_id))  # (another run's: run.owners)

    def history_month(self, year: int, month: int) -> Iterator[str]:
        """The run ids of one month's history index, as listed."""
        for key in self._store.list_keys(self.layout.history_month(year, month)):
            if key.endswith(".json") and not key.endswith(".manifest.json"):
                yield key.rsplit("/", 1)[1].removesuffix(".json")

    def _doc(self, key: str) -> dict[str, Any] | None:
        raw = self._store.get(key)
        if raw is None:
            return None
        doc = json_codec.loads(raw)
        return doc if isinstance(doc, dict) else None

"""The chaos campaign's cancellation scenarios (`wifi-export cancel`, issue 15).

A cancel requested at any point before the commit begins must end the run with
nothing committed (the table byte-identical to what an earlier run left) and
exactly one notification, with status `cancelled`, whatever else happens:
duplicated deliveries, the canceller killed before notifying, the cancel racing
the finisher's lease. Once the commit has begun, a cancel is refused and the run
succeeds as if nobody had asked. The cancel is made by the CLI's own code
(`wifi_export_cli.runs.Runs.cancel`), at the moment a planted hook fires.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from exporter.api_client import AnalytiksClient
from exporter.aws import S3Store, SnsPublisher
from local.campaign import Campaign, fired, inject, nth, scenario
from local.harness import Killed
from tests.chaos.campaign import (
    BIG,
    EVENT,
    HOP,
    REDELIVERY_S,
    SHORT,
    STATE,
    Earlier,
    chaos_lab,
    dead_workers_do_nothing,
    earlier,
    execute,
    fast_retries,
    settle,
)
from tests.integration.conftest import Lab
from wifi_export_cli.deployment import CliError, Deployment
from wifi_export_cli.runs import Runs

__all__ = ["chaos_lab", "dead_workers_do_nothing", "earlier", "fast_retries"]

GROUP = "Cancellation (wifi-export cancel)"


class Canceller:
    """`wifi-export cancel` for the run in flight, made when a hook fires."""

    def __init__(self, lab: Lab, earlier: Earlier) -> None:
        self.lab = lab
        self.earlier = earlier
        self.answers: list[str] = []
        self._busy = False

    def run_id(self) -> str:
        plans = [
            k.split("/")[-2]
            for k in self.lab.list_keys(STATE + "runs/")
            if k.endswith("/plan.json") and self.earlier.run_id not in k
        ]
        (run_id,) = plans
        return run_id

    def cancel(self) -> None:
        if self._busy or self.answers:
            return  # once; and not from inside its own S3 calls
        self._busy = True
        try:
            deployment = Deployment(
                self.lab.bucket, "wifi/metrics", "wifi/_exports", None, "the chaos lab"
            )
            runs = Runs(
                deployment,
                S3Store(self.lab.bucket, client=self.lab.s3),
                lambda: datetime.now(UTC),
            )
            try:
                self.answers.append(runs.cancel(self.run_id(), "chaos").outcome)
            except CliError as exc:
                self.answers.append(f"refused: {exc.message}")
        finally:
            self._busy = False

    def on_call(self, n: int, where: str = "") -> Callable[[int, tuple[Any, ...]], None]:
        """A `decide` for `inject` that cancels at the n-th call (whose first argument
        contains `where`), and raises nothing."""
        seen = {"n": 0}

        def decide(_calls: int, args: tuple[Any, ...]) -> None:
            if self._busy or (where and not (args and where in str(args[0]))):
                return
            seen["n"] += 1
            if seen["n"] == n:
                self.cancel()

        return decide


def settle_cancelled(run: Any, row: Any, canceller: Canceller, kills: int = 0) -> None:
    note = settle(run, row, "cancelled", kills=kills)
    assert note["body"]["status"] == "cancelled"
    assert note["subject"].startswith("wifi-export cancelled:")
    row.detail = f"cancel {canceller.answers[0]}; nothing committed"
    assert canceller.answers[0] == "requested"
    status = run.lab.s3.get_object(
        Bucket=run.lab.bucket, Key=f"{STATE}runs/{run.run_id}/status.json"
    )["Body"].read()
    assert b'"cancelled"' in status


def test_cancel_before_any_step(chaos_lab: Lab, earlier: Earlier, campaign: Campaign) -> None:
    canceller = Canceller(chaos_lab, earlier)
    with scenario(campaign, GROUP, "cancel right after the start, before any step", "cancelled",
                  "CLI, before the queue delivers") as row:  # fmt: skip
        run = execute(chaos_lab, EVENT, budget_ms=HOP, arm=canceller.cancel, earlier=earlier)
        fired(row, len(canceller.answers), "cancel requested", exactly=1)
        settle_cancelled(run, row, canceller)


@pytest.mark.parametrize("page", [2, 4])
def test_cancel_mid_window(
    chaos_lab: Lab, earlier: Earlier, campaign: Campaign, monkeypatch: pytest.MonkeyPatch, page: int
) -> None:
    canceller = Canceller(chaos_lab, earlier)
    case = f"cancel while page {page} is fetched, one page per invocation"
    with scenario(campaign, GROUP, case, "cancelled", "CLI, during a v3 fetch") as row:

        def arm() -> None:
            inject(monkeypatch, AnalytiksClient, "fetch_v3", canceller.on_call(page), after=True)

        run = execute(chaos_lab, EVENT, budget_ms=HOP, arm=arm, earlier=earlier)
        fired(row, len(canceller.answers), "cancel requested", exactly=1)
        settle_cancelled(run, row, canceller)


def test_cancel_with_every_message_delivered_twice(
    chaos_lab: Lab, earlier: Earlier, campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    canceller = Canceller(chaos_lab, earlier)
    case = "cancel mid-run while every message is delivered twice"
    with scenario(campaign, GROUP, case, "cancelled", "CLI, during a v3 fetch") as row:

        def arm() -> None:
            inject(monkeypatch, AnalytiksClient, "fetch_v3", canceller.on_call(3), after=True)

        run = execute(chaos_lab, EVENT, budget_ms=HOP, arm=arm, earlier=earlier, duplicate=True)
        fired(row, len(canceller.answers), "cancel requested", exactly=1)
        settle_cancelled(run, row, canceller)


def test_the_cancelling_finisher_is_killed_before_it_notifies(
    chaos_lab: Lab, earlier: Earlier, campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    canceller = Canceller(chaos_lab, earlier)
    case = "cancel, then the invocation finishing the cancel is killed before publishing"
    with scenario(campaign, GROUP, case, "cancelled", "SNS publish (killed)") as row:

        def arm() -> None:
            canceller.cancel()
            state["kill"] = inject(monkeypatch, SnsPublisher, "publish", nth(1, Killed))

        state: dict[str, dict[str, int]] = {}
        run = execute(
            chaos_lab, EVENT, budget_ms=SHORT, arm=arm, earlier=earlier,
            redelivery_delay_s=REDELIVERY_S,
        )  # fmt: skip
        fired(row, state["kill"]["raised"], "kill before the publish", exactly=1)
        settle_cancelled(run, row, canceller, kills=1)


def test_a_cancel_landing_just_after_the_lease_still_wins(
    chaos_lab: Lab, earlier: Earlier, campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: the finisher took its lease, the cancel lands before it decides."""
    canceller = Canceller(chaos_lab, earlier)
    case = "cancel lands right after the finisher took its lease"
    with scenario(campaign, GROUP, case, "cancelled", "S3 lease put (then cancel)") as row:

        def arm() -> None:
            decide = canceller.on_call(1, where="/commit/lease-")
            inject(monkeypatch, S3Store, "put_if_absent", decide, after=True)

        run = execute(chaos_lab, EVENT, budget_ms=BIG, arm=arm, earlier=earlier)
        fired(row, len(canceller.answers), "cancel requested under the lease", exactly=1)
        settle_cancelled(run, row, canceller)


def test_a_cancel_once_the_commit_began_is_refused(
    chaos_lab: Lab, earlier: Earlier, campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    canceller = Canceller(chaos_lab, earlier)
    case = "cancel while the commit copies objects"
    with scenario(campaign, GROUP, case, "succeeded", "CLI, during an S3 copy") as row:

        def arm() -> None:
            inject(monkeypatch, S3Store, "copy", canceller.on_call(1))

        run = execute(chaos_lab, EVENT, budget_ms=BIG, arm=arm, earlier=earlier)
        fired(row, len(canceller.answers), "cancel attempted during the commit", exactly=1)
        settle(run, row, "succeeded")
        assert canceller.answers[0].startswith("refused: ")
        assert "commit has begun" in canceller.answers[0]
        row.detail = f"cancel refused (commit has begun); {row.detail}"

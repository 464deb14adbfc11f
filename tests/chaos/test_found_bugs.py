"""Chaos campaign: bugs it found, now fixed (forged checkpoints, repeated
locations, retried invocations, echoed credentials)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from exporter.aws import S3Store
from local.campaign import (
    Campaign,
    Probe,
    fired,
    scenario,
)
from local.chaos import (
    Reply,
    Request,
    Responder,
    ScriptedApi,
    find_secrets,
)
from local.chaos import v3_pages as pages
from local.harness import FakeContext, drain
from tests.chaos.campaign import (
    BIG,
    BRAND,
    FIRST,
    GOOD,
    HOP,
    ONE_DAY,
    V3,
    Earlier,
    Run,
    chaos_lab,
    dead_workers_do_nothing,
    earlier,
    everything,
    execute,
    fast_retries,
    settle,
    use_scripted,
)
from tests.chaos.campaign import (
    scripted_page as _page,
)
from tests.integration.conftest import CLIENT_SECRET, Lab
from tests.integration.test_export import assert_table_matches

__all__ = ["chaos_lab", "dead_workers_do_nothing", "earlier", "fast_retries"]


# -- found by this campaign and fixed: forged checkpoints, repeated locations, Lambda
# retries of an invocation, echoed credentials ------------------------------------------


@pytest.mark.parametrize(
    ("step", "expected"),
    [(2, "ignored; run succeeds exactly once"), (200, "ignored; run succeeds (not MAX_HOPS)")],
)
def test_forged_checkpoint_for_a_running_run(
    chaos_lab: Lab, campaign: Campaign, step: int, expected: str
) -> None:
    """A step that does not continue the recorded chain is rejected: no rows twice,
    and a step number past MAX_HOPS cannot fail a healthy run."""
    lab = chaos_lab
    with scenario(campaign, "Bad checkpoint messages",
                  f"forged checkpoint {{step: {step}, cursor: null}} for a running run",
                  expected, "an SQS message next to the run's own") as row:  # fmt: skip
        probe = Probe()
        response = probe.handler()(ONE_DAY, FakeContext(HOP))
        run_id = response["runs"][0]["runId"]
        forged = {"v": 1, "runId": run_id, "brandId": BRAND, "window": 0, "step": step,
                  "cursor": None}  # fmt: skip
        lab.sqs.send_message(QueueUrl=lab.queue_url, MessageBody=json.dumps(forged))
        report = drain(probe.handler(), lab.sqs, lab.queue_url, budget_ms=HOP)
        run = Run(lab, response, report, probe, {}, 0)
        settle(run, row, "succeeded", first=date(2023, 6, 1), last=date(2023, 6, 1))
        delivered = sum(
            r["body"] == json.dumps(forged) for e in probe.events for r in e.get("Records", [])
        )
        fired(row, delivered, "forged message delivered", exactly=1)


def test_same_location_on_two_pages(chaos_lab: Lab, earlier: Earlier, campaign: Campaign) -> None:
    """Two pages of one window carry the same location: exporting both would count its
    rows twice, and which copy is right is unknowable. The run fails (malformed data)."""
    lab = chaos_lab
    script = pages({None: _page(GOOD, cursor="p2"), "p2": _page(GOOD)})
    with (
        ScriptedApi(script) as api,
        scenario(campaign, "Broken API responses", "API returns the same location on two pages",
                 "failed", "scripted v3 answers") as row,
    ):  # fmt: skip
        use_scripted(lab, api)
        run = execute(lab, ONE_DAY, budget_ms=BIG, earlier=earlier)
        settle(run, row, "failed", api_calls=api.calls[V3])
        fired(row, api.calls[V3], "pages served (the second repeats the location)", exactly=2)
        assert "twice in one window" in row.detail


def test_retried_on_demand_invocation_reuses_its_run(
    chaos_lab: Lab, campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fired: the retry found the first invocation's sighting of the request already
    # recorded (its conditional put refused), which is what makes it reuse the run.
    refused: list[str] = []
    put_if_absent = S3Store.put_if_absent

    def recording(self: S3Store, key: str, *args: Any, **kwargs: Any) -> bool:
        created = put_if_absent(self, key, *args, **kwargs)
        if not created and "/requests/" in key:
            refused.append(key)
        return created

    monkeypatch.setattr(S3Store, "put_if_absent", recording)
    with scenario(campaign, "SQS delivery", "on-demand invocation retried by Lambda (same request "
                  "id)", "same run id, one run", "the handler, invoked twice") as row:  # fmt: skip
        import app  # noqa: PLC0415

        lab = chaos_lab
        context = FakeContext(BIG)
        first = app.handler(ONE_DAY, context)
        time.sleep(0.01)
        second = app.handler(ONE_DAY, context)
        fired(row, len(refused), "retry found its request's first sighting", exactly=1)
        ids = [r["runs"][0]["runId"] for r in (first, second)]
        row.outcome = "same run" if ids[0] == ids[1] else "two runs"
        row.detail = " vs ".join(ids)
        assert ids[0] == ids[1], row.detail
        # ... and one run to the end: its windows were queued once, one notification.
        report = lab.drain(BIG)
        row.invocations = 2 + report.invocations
        assert report.invocations == 1  # ONE_DAY is one window
        notes = lab.notifications()
        row.notifications = len(notes)
        assert [(n["body"]["status"], n["body"]["runId"]) for n in notes] == [("succeeded", ids[0])]
        rows = assert_table_matches(lab, BRAND, FIRST, FIRST, "utc", run_id=ids[0])
        row.checked = f"one run id; {len(rows)} rows each once; 1 notification"


Script = Callable[[ScriptedApi], Responder | None]
ECHOES: list[tuple[str, Script, Script]] = [
    ("API 400 whose message echoes the Authorization header",
     lambda api: lambda r: Reply.json(
         {"message": f"bad request with {r.headers.get('authorization')}"}, 400),
     lambda api: None),
    ("token endpoint 400 whose message echoes the request body",
     lambda api: pages({None: _page(GOOD)}),
     lambda api: lambda r: Reply.json({"message": f"invalid request {r.body.decode()}"}, 400)),
]  # fmt: skip


@pytest.mark.parametrize(("case", "v3", "token"), ECHOES, ids=[e[0] for e in ECHOES])
def test_echoed_credentials_are_redacted(
    chaos_lab: Lab,
    earlier: Earlier,
    campaign: Campaign,
    capfd: pytest.CaptureFixture[str],
    case: str,
    v3: Callable[[ScriptedApi], Responder],
    token: Callable[[ScriptedApi], Responder | None],
) -> None:
    api = ScriptedApi(lambda r: Reply())
    echoed: list[str] = []  # fired: the echoing 400 answers the server actually sent

    def counting(responder: Responder | None) -> Responder | None:
        if responder is None:
            return None

        def answer(request: Request) -> Reply:
            reply = responder(request)
            if reply.status == 400:
                echoed.append(request.path)
            return reply

        return answer

    api.v3, api.token = counting(v3(api)), counting(token(api))  # type: ignore[assignment]
    with api, scenario(campaign, "Security", case, "failed, no leak", "scripted 400 answer") as row:
        use_scripted(chaos_lab, api)
        run = execute(chaos_lab, ONE_DAY, budget_ms=BIG, earlier=earlier)
        settle(run, row, "failed", api_calls=sum(api.calls.values()))
        fired(row, len(echoed), "echoing 400 answer reached the exporter", exactly=1)
        out, _err = capfd.readouterr()
        blobs = [*everything(chaos_lab, run.probe.events), ("stdout", out.encode())]
        leaks = find_secrets(blobs, [CLIENT_SECRET, *api.tokens])
        assert not leaks, f"leaked: {leaks[:3]}"

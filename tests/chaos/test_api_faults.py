"""Chaos campaign: faults of the analytiks API, and answers that break its contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from local.campaign import (
    Campaign,
    fired,
    scenario,
)
from local.chaos import (
    Reply,
    Request,
    ScriptedApi,
)
from local.chaos import record as rec
from local.chaos import v3_pages as pages
from tests.chaos.campaign import (
    BIG,
    BRAND,
    DAY,
    EVENT,
    FAST_POLICY,
    GOOD,
    HOP,
    ONE_DAY,
    PAGES,
    SHORT,
    STATE,
    V3,
    Earlier,
    chaos_lab,
    dead_workers_do_nothing,
    earlier,
    execute,
    fast_retries,
    settle,
    use_scripted,
)
from tests.chaos.campaign import (
    scripted_page as _page,
)
from tests.integration.conftest import Lab

__all__ = ["chaos_lab", "dead_workers_do_nothing", "earlier", "fast_retries"]


# -- faults of the analytiks API ------------------------------------------------------


def _faults(**knobs: Any) -> Callable[[Lab], None]:
    def apply(lab: Lab) -> None:
        for name, value in knobs.items():
            if name in ("queue", "token_queue"):
                getattr(lab.api.faults, name).extend(value)
            else:
                setattr(lab.api.faults, name, value)

    return apply


API = "fake API, v3 answers"
TOKEN = "fake API, token endpoint"
API_FAULTS: list[tuple[str, str, Callable[[Lab], None], int, str, dict[str, str]]] = [
    ("429 storm x7, Retry-After: 0 (outlasts one fetch's 5 attempts)", API,
     _faults(queue=["429"] * 7, retry_after=0), BIG, "succeeded", {}),
    ("429 x3 with Retry-After: 1", API, _faults(queue=["429"] * 3, retry_after=1), BIG,
     "succeeded", {}),
    ("500, 502, 503, 500", API, _faults(queue=["500", "502", "503", "500"]), BIG, "succeeded",
     {}),
    ("connection reset on 30% of calls", API, _faults(rate_reset=0.3), BIG, "succeeded", {}),
    ("truncated body on 30% of calls", API, _faults(rate_truncate=0.3), BIG, "succeeded", {}),
    ("2 responses slower than the 1 s read timeout", API,
     _faults(queue=["slow", "slow"], slow_seconds=1.5), BIG, "succeeded", {}),
    ("token revoked after every 2 pages (401 mid-run)", API, _faults(revoke_after=2), BIG,
     "succeeded", {}),
    ("token endpoint: 500, 503, reset, 429, truncate", TOKEN,
     _faults(token_queue=["500", "503", "reset", "429", "truncate"], retry_after=0), BIG,
     "succeeded", {}),
    ("mixed 10% 429 / 10% 5xx / 5% reset / 5% truncate, one page per invocation", API,
     _faults(rate_429=0.1, rate_5xx=0.1, rate_reset=0.05, rate_truncate=0.05, retry_after=0),
     HOP, "succeeded", {}),
    ("token endpoint rejects the credentials (401)", TOKEN, _faults(token_queue=["401"]), BIG,
     "failed", {}),
    ("API answers 400 (permanent) to the first page", API, _faults(queue=["400"]), BIG,
     "failed", {}),
    (f"API answers 400 (permanent) to page {PAGES} of window 0, one page per invocation", API,
     _faults(queue=["ok"] * (PAGES - 1) + ["400"]), HOP, "failed", {}),
    ("5xx forever (API down), MAX_RECEIVE_COUNT=3", API, _faults(rate_5xx=1.0), SHORT, "failed",
     {"MAX_RECEIVE_COUNT": "3"}),
    (f"429 forever with Retry-After: 1, {SHORT / 1000:g} s invocations, MAX_RECEIVE_COUNT=3",
     API, _faults(rate_429=1.0, retry_after=1), SHORT, "failed", {"MAX_RECEIVE_COUNT": "3"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "where", "setup", "budget", "expect", "env"),
    API_FAULTS,
    ids=[c[0] for c in API_FAULTS],
)
def test_api_faults(
    chaos_lab: Lab,
    earlier: Earlier,
    campaign: Campaign,
    case: str,
    where: str,
    setup: Callable[[Lab], None],
    budget: int,
    expect: str,
    env: dict[str, str],
) -> None:
    lab = chaos_lab
    if env:
        lab.configure(**env)
    with scenario(campaign, "API faults", case, expect, where) as row:
        run = execute(lab, EVENT, budget_ms=budget, arm=lambda: setup(lab), earlier=earlier)
        settle(run, row, expect)
        stats = lab.api.stats
        revoked = stats.path_responses[V3, 401] if lab.api.faults.revoke_after else 0
        faults = sum(stats.faults.values()) + sum(stats.token_faults.values()) + revoked
        row.detail = f"{faults} faults injected, {stats.tokens_issued} tokens; {row.detail}"
        fired(row, faults, "faults served" if not revoked else "tokens revoked (401)")
        assert not lab.api.faults.queue and not lab.api.faults.token_queue, "planted, not served"
        if "to page" in case:  # the refusal came after the first pages were staged
            assert stats.path_responses[V3, 200] == PAGES - 1
            staged = lab.list_keys(f"{STATE}runs/{run.run_id}/")
            assert any(k.endswith(".json.gz") for k in staged), "nothing was staged"
        # Bounded: at most max_attempts requests per page fetch, every invocation in time.
        assert stats.calls[V3] <= FAST_POLICY["max_attempts"] * (
            run.probe.invocations + stats.pages_served
        )


# -- broken API responses (scripted server) -----------------------------------------------

BROKEN: list[tuple[str, dict[str | None, Any], str]] = [
    ("200 with an HTML body", {None: b"<html>502 Bad Gateway</html>"}, "invalid JSON"),
    ("200 with an empty body", {None: b""}, "invalid JSON"),
    ("answer is a JSON list", {None: [GOOD]}, "'data'"),
    ("'data' missing", {None: {"cursor": None}}, "'data'"),
    ("'data' is an object", {None: {"data": {"a": 1}, "cursor": None}}, "'data'"),
    ("a data item is a string", {None: _page("x")}, "not an object"),
    ("locationId is a string", {None: _page({**GOOD, "locationId": "123400001"})}, "locationId"),
    ("locationId is negative", {None: _page({**GOOD, "locationId": -1})}, "locationId"),
    ("negative metric value", {None: _page(rec(123400001, metrics={"visits": -3}))},
     "natural number"),
    ("fractional metric value",
     {None: _page({"locationId": 1, "visits": {f"{DAY}T00:00:00Z": 1.5}})}, "natural number"),
    ("metric value is a string",
     {None: _page({"locationId": 1, "visits": {f"{DAY}T00:00:00Z": "7"}})},
     "natural number"),
    ("metric value beyond 64 bits",
     {None: b'{"data":[{"locationId":1,"visits":{"2023-06-01T00:00:00Z":1180591620717411303424}}],'
            b'"cursor":null}'}, "natural number"),
    ("metric series is a list", {None: _page({"locationId": 1, "visits": [1, 2]})}, "not a map"),
    ("unparseable timestamp", {None: _page({"locationId": 1, "visits": {"yesterday 5pm": 1}})},
     "ISO 8601"),
    # (+02:00 in a UTC request is exported as a local row since issue 13: contracts.md)
    ("timestamp with an offset beyond +14:00",
     {None: _page({"locationId": 1, "visits": {f"{DAY}T10:00:00+15:00": 1}})}, "UTC offset"),
    ("impossible time 25:00", {None: _page({"locationId": 1, "visits": {f"{DAY}T25:00:00Z": 1}})},
     "valid time"),
    ("cursor repeats itself", {None: _page(GOOD, cursor="A"), "A": _page(GOOD, cursor="A")},
     "repeats"),
    ("cursor is a number", {None: _page(GOOD, cursor=5)}, "cursor"),
    ("cursor is an empty string", {None: _page(GOOD, cursor="")}, "cursor"),
    ("cursor longer than 8192", {None: _page(GOOD, cursor="c" * 9000)}, "8192"),
]  # fmt: skip


def test_broken_api_responses(chaos_lab: Lab, earlier: Earlier, campaign: Campaign) -> None:
    lab = chaos_lab
    violations: list[str] = []
    for case, script, mention in BROKEN:
        with ScriptedApi(pages(script)) as api:
            use_scripted(lab, api)
            try:
                with scenario(campaign, "Broken API responses", case, "failed",
                              "scripted v3 answer") as row:  # fmt: skip
                    run = execute(lab, ONE_DAY, budget_ms=BIG, earlier=earlier)
                    settle(run, row, "failed", api_calls=api.calls[V3])
                    fired(row, api.calls[V3], "v3 answers served")
                    assert mention in row.detail, f"error does not mention {mention!r}"
                    assert run.report.failed_records == 0, "a permanent error was redelivered"
            except AssertionError as exc:
                violations.append(f"{case}: {exc}")
    assert not violations, violations


TOKEN_BROKEN: list[tuple[str, Reply, str]] = [
    ("token endpoint: 200 with HTML", Reply(200, b"<html>hi</html>"), "invalid JSON"),
    ("token endpoint: no access_token", Reply.json({"token_type": "Bearer"}), "access_token"),
    ("token endpoint: expires_in is text", Reply.json({"access_token": "t", "expires_in": "x"}),
     "expires_in"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "reply", "mention"), TOKEN_BROKEN, ids=[t[0] for t in TOKEN_BROKEN]
)
def test_broken_token_endpoint(
    chaos_lab: Lab, earlier: Earlier, campaign: Campaign, case: str, reply: Reply, mention: str
) -> None:
    with (
        ScriptedApi(pages({None: _page(GOOD)}), token=lambda _r: reply) as api,
        scenario(campaign, "Broken API responses", case, "failed", "scripted token answer") as row,
    ):
        use_scripted(chaos_lab, api)
        run = execute(chaos_lab, ONE_DAY, budget_ms=BIG, earlier=earlier)
        settle(run, row, "failed", api_calls=api.calls["/oauth/token"])
        fired(row, api.calls["/oauth/token"], "token answers served")
        assert mention in row.detail


@pytest.mark.parametrize("kind", ["cycle A→B→A", "endless fresh cursors"])
def test_looping_cursor_across_invocations(
    chaos_lab: Lab, earlier: Earlier, campaign: Campaign, kind: str
) -> None:
    """One page per invocation. A cycle spanning checkpoints returns locations again and is
    stopped there; endless fresh cursors with fresh locations are stopped by MAX_HOPS."""
    lab = chaos_lab
    lab.configure(MAX_HOPS="6")

    def endless(request: Request) -> Reply:
        n = len(api.requests)
        return Reply.json(_page(rec(123400000 + n, reference=f"REF-{n}"), cursor=f"c{n}"))

    script = pages({None: _page(GOOD, cursor="A"), "A": _page(rec(123400002), cursor="B"),
                    "B": _page(rec(123400003), cursor="A")})  # fmt: skip
    cycle = kind.startswith("cycle")
    with (
        ScriptedApi(script if cycle else endless) as api,
        scenario(campaign, "Broken API responses", f"{kind}, one page per invocation, MAX_HOPS=6",
                 "failed", "scripted v3 cursors") as row,
    ):  # fmt: skip
        use_scripted(lab, api)
        run = execute(lab, ONE_DAY, budget_ms=HOP, earlier=earlier)
        settle(run, row, "failed", api_calls=api.calls[V3])
        # The loop closed (cursor A served again, with its location) / the chain outran
        # MAX_HOPS (one page per invocation, MAX_HOPS + 1 invocations).
        fired(row, api.calls[V3], "v3 pages served", exactly=4 if cycle else 7)
        assert ("twice in one window" if cycle else "MAX_HOPS") in row.detail


def test_hostile_strings_cannot_steer_keys(chaos_lab: Lab, campaign: Campaign) -> None:
    """referenceNumber, zoneId, metric names and cursors full of ../ and / stay data."""
    lab = chaos_lab
    evil = "../../../../wifi/metrics/brand_id=1/dt=2023-06-01/x"
    script = pages(
        {
            None: _page(
                rec(123400001, reference=evil, zone="../zone/..", metrics={"visits": 1, evil: 2}),
                cursor="../../" + evil,
            ),
            "../../" + evil: _page(
                rec(123400002, reference="/etc/passwd", zone="a/b"),
                rec(123400003, day="2023-06-02", reference="/etc/passwd"),  # outside the run
                cursor="%2F..%2F..%2Fx/",
            ),
            "%2F..%2F..%2Fx/": _page(),
        }
    )
    with (
        ScriptedApi(script) as api,
        scenario(campaign, "Key confinement", "'../' and '/' in referenceNumber, zoneId, "
                 "metric name and cursor", "succeeded", "scripted v3 answers") as row,
    ):  # fmt: skip
        use_scripted(lab, api)
        run = execute(lab, ONE_DAY, budget_ms=HOP)
        settle(run, row, "succeeded", api_calls=api.calls[V3], check_rows=False)
        fired(row, api.calls[V3], "hostile pages served", exactly=3)
        row.checked = "48 rows, strings kept as data; every key under its prefix; 1 notification"
        rows = lab.rows(BRAND)
        assert len(rows) == 48
        assert {r["reference_number"] for r in rows.values()} == {evil, "/etc/passwd"}
        assert any((r["extra"] or {}).get(evil) == 2 for r in rows.values())
        keys = lab.list_keys()
        assert all("passwd" not in k and "zone" not in k for k in keys)
        assert not any("dt=2023-06-02" in k for k in keys)

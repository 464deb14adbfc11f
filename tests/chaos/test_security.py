"""Chaos campaign: secrets and tokens never leak; plain HTTP and bad TLS refused."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from exporter.errors import ConfigError
from local.campaign import (
    Campaign,
    fired,
    scenario,
)
from local.chaos import (
    TlsServer,
    find_secrets,
)
from tests.chaos.campaign import (
    BIG,
    BRAND,
    DAY,
    EVENT,
    HOP,
    MARGIN_MS,
    ONE_DAY,
    Earlier,
    chaos_lab,
    dead_workers_do_nothing,
    earlier,
    everything,
    execute,
    fast_retries,
    settle,
)
from tests.integration.conftest import CLIENT_SECRET, Lab

__all__ = ["chaos_lab", "dead_workers_do_nothing", "earlier", "fast_retries"]


# -- security ---------------------------------------------------------------------------


def test_no_secret_or_token_leaks(
    make_lab: Callable[..., Lab],
    campaign: Campaign,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DEBUG logging, many tokens (revoked after each page), retries and a failed run:
    neither the client secret nor any issued token shows up anywhere we can look."""
    from exporter.observability import logger  # noqa: PLC0415

    lab = make_lab(brands={BRAND: 8, 999: 3}, page_size=4, allowed_brands=[BRAND])
    lab.configure(TIME_SAFETY_MARGIN_MS=str(MARGIN_MS), POWERTOOLS_LOG_LEVEL="DEBUG")
    logger.setLevel("DEBUG")
    caplog.set_level(logging.DEBUG, logger="wifi-export")
    lab.api.faults.revoke_after = 1
    lab.api.faults.queue.extend(["429", "500", "reset"])
    lab.api.faults.retry_after = 0
    with scenario(campaign, "Security", "secrets and tokens in logs (DEBUG), errors, "
                  "notifications, S3, SQS", "no leak",
                  "fake API: token revoked after each page, 429, 500, reset") as row:  # fmt: skip
        try:
            run = execute(lab, {"brandIds": [BRAND, 999], "startDate": DAY, "endDate": DAY},
                          budget_ms=HOP)  # fmt: skip
        finally:
            logger.setLevel("INFO")
        out, err = capfd.readouterr()
        tokens = lab.api.issued_tokens()
        blobs = everything(lab, run.probe.events)
        blobs += [("stdout", out.encode()), ("stderr", err.encode())]
        blobs += [(f"log {r.name}", r.getMessage().encode()) for r in caplog.records]
        blobs += [("responses", json.dumps(run.report.responses, default=str).encode())]
        statuses = sorted(n["body"]["status"] for n in lab.notifications())
        row.outcome = "+".join(statuses)
        row.notifications, row.invocations = len(statuses), run.probe.invocations
        row.api_calls = lab.api.stats.calls["/wifi/json/v3"]
        leaks = find_secrets(blobs, [CLIENT_SECRET, *tokens])
        row.detail = f"{len(tokens)} tokens + the secret searched in {len(blobs)} blobs"
        row.checked = "no secret or token in any blob; one notification per run"
        fired(row, len(tokens), "tokens issued (revoked ones included)")
        assert len(tokens) >= 3
        assert not lab.api.faults.queue, "planted faults not served"
        assert statuses == ["failed", "succeeded"]
        assert not leaks, leaks
        row.outcome += ", no leak"


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("API_URL", "http://exports.analytiks.ai"),
        ("TOKEN_URL", "http://tokens.analytiks.ai/oauth/token"),
        ("API_URL", "http://127.0.0.1.nip.io:8080"),
        ("TOKEN_URL", "http://localhost.evil.example/"),
        ("API_URL", "ftp://127.0.0.1/"),
        ("TOKEN_URL", "tokens.analytiks.ai"),
    ],
)
def test_plain_http_refused_for_remote_hosts(
    chaos_lab: Lab, campaign: Campaign, monkeypatch: pytest.MonkeyPatch, variable: str, url: str
) -> None:
    from exporter import wiring  # noqa: PLC0415
    from exporter.config import load_settings  # noqa: PLC0415

    # Fired: the configuration the invocation read held the planted URL.
    seen: list[str | None] = []

    def reading(*args: Any, **kwargs: Any) -> Any:
        seen.append(os.environ.get(variable))
        return load_settings(*args, **kwargs)

    monkeypatch.setattr(wiring, "load_settings", reading)
    with scenario(
        campaign, "Security", f"{variable}={url}", f"config error naming {variable}", "cold start"
    ) as row:
        chaos_lab.configure(**{variable: url})
        with pytest.raises(ConfigError) as error:
            chaos_lab.invoke(EVENT)
        row.outcome, row.detail, row.invocations = "config error", str(error.value), 1
        fired(row, seen.count(url), f"configuration read with {variable} planted", exactly=1)
        row.checked = "error names the variable; no S3 object; no API call"
        assert variable in str(error.value)
        assert chaos_lab.list_keys() == [] and chaos_lab.api.stats.data_calls == 0


def test_tls_certificates_are_verified(
    chaos_lab: Lab, earlier: Earlier, campaign: Campaign
) -> None:
    with (
        TlsServer() as server,
        scenario(campaign, "Security", "HTTPS API with a self-signed certificate on 127.0.0.1",
                 "failed, no request sent", "TLS handshake with the token endpoint") as row,
    ):  # fmt: skip
        chaos_lab.configure(API_URL=server.url, TOKEN_URL=server.url + "/oauth/token")
        run = execute(chaos_lab, ONE_DAY, budget_ms=BIG, earlier=earlier)
        settle(run, row, "failed", api_calls=server.requests)
        give_up = time.monotonic() + 10  # the server counts in its own thread
        while not server.handshakes_refused and time.monotonic() < give_up:
            time.sleep(0.01)
        fired(row, server.handshakes_refused, "handshake refused by the exporter")
        assert "TLS" in row.detail
        assert server.requests == 0

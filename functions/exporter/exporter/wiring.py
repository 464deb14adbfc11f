"""The composition root: real adapters for the ports, built once per cold start.

Everything the run protocol depends on is passed in here (adapters, the retry
policy, the clock), so a test builds the same context with other parts.
"""

from __future__ import annotations

import functools
import sys
from datetime import UTC, datetime
from typing import Final

from exporter.api_client import AnalytiksClient, RetryPolicy
from exporter.aws import S3Store, SnsPublisher, SqsQueue, read_credentials
from exporter.config import Settings, load_settings
from exporter.pacing import for_settings as pacer_for
from exporter.ports import Clock
from exporter.run.context import RunContext


def utc_now() -> datetime:
    return datetime.now(UTC)


# The production retry policy and clock; the composition root is where a test swaps them.
RETRY_POLICY = RetryPolicy()
CLOCK: Clock = utc_now

# How long a thread may hold the GIL while another waits for it (CPython: 5 ms).
# The page reader's next request and its answer wait for the GIL while the main
# thread shapes rows; at 5 ms that cost each page about 1.5 ms of wall time
# (docs/performance.md, "GIL switch interval").
SWITCH_INTERVAL_S: Final = 0.0005


@functools.cache
def settings() -> Settings:
    return load_settings()


def build_context(
    config: Settings, *, policy: RetryPolicy | None = None, clock: Clock = utc_now
) -> RunContext:
    retry = policy or RetryPolicy()
    # One pacer per container: its share of API_MAX_RPS holds across the
    # invocations (and steps) this container serves (exporter.pacing).
    pacer = pacer_for(config.api_max_rps, config.max_concurrency)

    def api() -> AnalytiksClient:
        return AnalytiksClient(
            config.api_url,
            config.token_url,
            config.api_audience,
            lambda: read_credentials(config.secret_id),
            policy=retry,
            pacer=pacer,
        )

    return RunContext(
        config,
        S3Store(config.bucket_name),
        SqsQueue(config.queue_url),
        SnsPublisher(config.topic_arn),
        api,
        clock,
    )


@functools.cache
def context() -> RunContext:
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # once per container, before any thread
    return build_context(settings(), policy=RETRY_POLICY, clock=CLOCK)

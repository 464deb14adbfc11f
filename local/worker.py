"""A Lambda worker in its own process, for kills that really happen (tests/chaos/test_sigkill.py).

    python -m local.worker --report out.json [--event JSON] [--drain] [--freeze-at SPEC]

The exporter's handler runs here as in a Lambda container: configuration from the
environment (AWS_ENDPOINT_URL pointing at a moto *server*), a direct invocation of
`--event`, then, with `--drain`, the checkpoint queue delivered to it by
`local.harness.drain` until it is empty. Each process starts cold: no token, no
secret, no plan cache carried over from another.

`--freeze-at Class.method:n` (with `--freeze-where TEXT`: count only calls whose
first argument contains it) stops the worker dead at the n-th call of that adapter
method, before it is made: the worker writes `--marker` and from then on blocks
every adapter call in every thread, waiting for its supervisor's SIGKILL. Nothing
of the exporter runs after that: no `finally`, no unwinding, no flush.

The report (JSON) holds the direct invocation's response and the drain's counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "functions" / "exporter"))

# Small timeouts and backoff, as in the in-process campaign (tests/chaos): the retry
# logic is the real one, and invocations of about two seconds can afford a page.
FAST_POLICY: dict[str, Any] = {
    "max_attempts": 5,
    "base_delay_s": 0.05,
    "max_delay_s": 0.4,
    "max_retry_after_s": 2.0,
    "connect_timeout_s": 1.0,
    "read_timeout_s": 1.0,
}
ADAPTER_METHODS: dict[str, tuple[str, ...]] = {
    "S3Store": (
        "put",
        "put_if_absent",
        "put_if_match",
        "get",
        "get_versioned",
        "exists",
        "list_keys",
        "copy",
        "delete",
    ),
    "SqsQueue": ("send",),
    "SnsPublisher": ("publish",),
    "AnalytiksClient": ("fetch_v3",),
}


# The receive count of the SQS message being handled (None outside a delivery): the
# freeze marker records it, so that the supervisor knows which delivery died.
DELIVERY: dict[str, int | None] = {"count": None}


def freeze_at(spec: str, where: str, marker: Path) -> None:
    """Gate every adapter method; the n-th matching call of `spec` freezes the process."""
    from exporter import api_client, aws  # noqa: PLC0415

    target, _, count = spec.rpartition(":")
    n = int(count)
    classes: dict[str, type] = {
        "S3Store": aws.S3Store,
        "SqsQueue": aws.SqsQueue,
        "SnsPublisher": aws.SnsPublisher,
        "AnalytiksClient": api_client.AnalytiksClient,
    }
    frozen = threading.Event()
    lock = threading.Lock()
    seen = {"n": 0}

    def hold() -> None:
        while True:  # until SIGKILL
            time.sleep(3600)

    for class_name, methods in ADAPTER_METHODS.items():
        cls = classes[class_name]
        for method in methods:
            original = getattr(cls, method, None)
            if original is None:  # an adapter of another version of the exporter
                continue
            is_target = f"{class_name}.{method}" == target

            def gate(
                self: Any,
                *args: Any,
                _original: Any = original,
                _is_target: bool = is_target,
                _name: str = f"{class_name}.{method}",
                **kwargs: Any,
            ) -> Any:
                if frozen.is_set():
                    hold()
                if _is_target and (not where or (args and where in str(args[0]))):
                    with lock:
                        seen["n"] += 1
                        hit = seen["n"] == n
                    if hit:
                        frozen.set()
                        detail = {
                            "pid": os.getpid(),
                            "at": _name,
                            "call": n,
                            "arg": str(args[:1]),
                            "delivery": DELIVERY["count"],
                        }
                        tmp = marker.with_suffix(".tmp")
                        tmp.write_text(json.dumps(detail))
                        tmp.replace(marker)
                        hold()
                return _original(self, *args, **kwargs)

            setattr(cls, method, gate)
    if target not in {f"{c}.{m}" for c, ms in ADAPTER_METHODS.items() for m in ms}:
        raise SystemExit(f"--freeze-at: unknown adapter method {target!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.worker", description=__doc__)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--event", help="a direct invocation's event (JSON)")
    parser.add_argument("--drain", action="store_true", help="then drain the checkpoint queue")
    parser.add_argument("--budget-ms", type=int, default=2_001)
    parser.add_argument("--visibility-timeout", type=int, default=4)
    parser.add_argument("--wait-in-flight", type=float, default=0.0)
    parser.add_argument("--redelivery-delay", type=float, default=0.5)
    parser.add_argument("--freeze-at", default="", help="Class.method:n")
    parser.add_argument("--freeze-where", default="")
    parser.add_argument("--marker", type=Path)
    args = parser.parse_args(argv)

    import boto3  # noqa: PLC0415

    import app  # noqa: PLC0415
    from exporter import api_client, wiring  # noqa: PLC0415
    from local.harness import FakeContext, drain  # noqa: PLC0415

    wiring.RETRY_POLICY = api_client.RetryPolicy(**FAST_POLICY)
    if args.freeze_at:
        if args.marker is None:
            parser.error("--freeze-at needs --marker")
        freeze_at(args.freeze_at, args.freeze_where, args.marker)
    report: dict[str, Any] = {"pid": os.getpid()}
    if args.event:
        report["response"] = app.handler(json.loads(args.event), FakeContext(args.budget_ms))
    if args.drain:
        sqs = boto3.client("sqs")
        redelivered: list[int] = []  # receive counts above 1: messages delivered before

        def count(_n: int, event: dict[str, Any]) -> None:
            for record in event["Records"]:
                received = int(record["attributes"]["ApproximateReceiveCount"])
                DELIVERY["count"] = received
                if received > 1:
                    redelivered.append(received)

        drained = drain(
            app.handler,
            sqs,
            os.environ["QUEUE_URL"],
            budget_ms=args.budget_ms,
            redelivery_delay_s=args.redelivery_delay,
            visibility_timeout_s=args.visibility_timeout,
            wait_in_flight_s=args.wait_in_flight,
            on_invoke=count,
        )
        report.update(
            invocations=drained.invocations,
            failed_records=drained.failed_records,
            crashed_invocations=drained.crashed_invocations,
            redelivered=redelivered,
        )
    args.report.write_text(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

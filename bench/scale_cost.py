"""What a scale scenario cost at list prices, line by line, counted from the run."""

from __future__ import annotations

from typing import Any, Final

# List prices, US East (N. Virginia), x86, no free tier (AWS pricing pages).
PRICES: Final[dict[str, float]] = {
    "lambda_gb_s": 0.0000166667,  # per GB-second
    "lambda_request": 0.20 / 1e6,
    "s3_tier1": 0.005 / 1000,  # PUT, COPY, POST, LIST
    "s3_tier2": 0.0004 / 1000,  # GET, HEAD and all other requests
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KB request
    "sns_publish": 0.50 / 1e6,
    "secrets_call": 0.05 / 10_000,
    "logs_gb": 0.50,  # CloudWatch Logs ingestion, per GB
    "s3_gb_month": 0.023,  # S3 Standard storage, first 50 TB
}
# DeleteObjects is a POST: priced with PUT/COPY/POST/LIST (single DELETEs are free).
S3_TIER1: Final = ("PutObject", "CopyObject", "ListObjectsV2", "DeleteObjects")
S3_TIER2: Final = ("GetObject", "HeadObject")


def _s3(calls: dict[str, int], ops: tuple[str, ...]) -> int:
    return sum(calls.get(f"s3.{op}", 0) for op in ops)


def cost_lines(sc: dict[str, Any], memory_mb: int) -> list[dict[str, Any]]:
    """What one scenario cost at list prices, line by line, counted from the run."""
    calls, poller = sc["aws_calls"], sc["poller_calls"]
    gb = memory_mb / 1024
    sends = calls.get("sqs.SendMessageBatch", 0) + calls.get("sqs.SendMessage", 0)
    delivered = poller.get("ReceiveMessage", 0)
    other_s3 = {
        k: v
        for k, v in calls.items()
        if k.startswith("s3.") and k.split(".", 1)[1] not in S3_TIER1 + S3_TIER2
    }
    lines = [
        (
            "Lambda duration",
            sc["invocation_wall_s"] * gb,
            "GB-s",
            PRICES["lambda_gb_s"],
            f"every invocation's wall time ({sc['invocations']:,} of them, "
            f"{sc['invocation_wall_s']:,.1f} s) x {memory_mb} MB",
        ),
        (
            "Lambda requests",
            sc["invocations"],
            "requests",
            PRICES["lambda_request"],
            "the start invocation + one per queue message delivered",
        ),
        (
            "S3 PUT/COPY/POST/LIST",
            _s3(calls, S3_TIER1),
            "requests",
            PRICES["s3_tier1"],
            ", ".join(f"{op} {calls.get('s3.' + op, 0):,}" for op in S3_TIER1),
        ),
        (
            "S3 GET/HEAD",
            _s3(calls, S3_TIER2) + sum(other_s3.values()),
            "requests",
            PRICES["s3_tier2"],
            ", ".join(f"{op} {calls.get('s3.' + op, 0):,}" for op in S3_TIER2)
            + ("; " + ", ".join(f"{k} {v}" for k, v in other_s3.items()) if other_s3 else ""),
        ),
        (
            "SQS requests",
            sends + 2 * delivered,
            "requests",
            PRICES["sqs_request"],
            f"{sends:,} sends (batches of up to 10) + {delivered:,} receives and "
            f"{delivered:,} deletes by the pollers",
        ),
        (
            "SNS publishes",
            calls.get("sns.Publish", 0),
            "publishes",
            PRICES["sns_publish"],
            "one notification per run",
        ),
        (
            "Secrets Manager",
            calls.get("secrets-manager.GetSecretValue", 0),  # botocore's event name
            "calls",
            PRICES["secrets_call"],
            "the API credentials, once per container (cached 5 min)",
        ),
        (
            "CloudWatch Logs",
            sc["log_bytes"] / 1e9,
            "GB",
            PRICES["logs_gb"],
            f"{sc['log_bytes']:,} bytes of JSON logs and EMF metrics at LOG_LEVEL=INFO",
        ),
    ]
    return [
        {"line": name, "quantity": q, "unit": unit, "price": price, "usd": q * price, "how": how}
        for name, q, unit, price, how in lines
    ]


def costs(results: dict[str, Any]) -> dict[str, Any]:
    memory = results["config"]["memory_mb"]
    out: dict[str, Any] = {"prices": PRICES, "memory_mb": memory, "scenarios": {}}
    for sc in results["scenarios"]:
        lines = cost_lines(sc, memory)
        total = sum(line["usd"] for line in lines)
        days = sc["brand_days"]
        cpu_floor = sc["invocation_cpu_s"] * memory / 1024 * PRICES["lambda_gb_s"]
        stored = sc["checks"]["bytes"]
        out["scenarios"][sc["scenario"]] = {
            "lines": lines,
            "total_usd": total,
            "per_brand_day_usd": total / days,
            "lambda_cpu_floor_per_brand_day_usd": cpu_floor / days,
            "stored_bytes_per_brand_day": stored / days,
            "storage_per_brand_day_month_usd": stored / days / 1e9 * PRICES["s3_gb_month"],
        }
    return out

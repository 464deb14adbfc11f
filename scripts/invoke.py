"""Start an on-demand export on the deployed stack (`make invoke`).

    python scripts/invoke.py --stack-name wifi-export --brand 1234 \
        --start 2023-06-08 --end 2023-06-30 [--locations 1,2,3 | --references US0658,FR2561
        | --zone <uuid>] [--zero-fill | --skip-unauthorized]
    python scripts/invoke.py --event events/scheduled.json [--function NAME]

Finds the function through the stack's FunctionName output and invokes it
synchronously with the on-demand event of docs/contracts.md, "Events". The answer (run ids and
plan) is printed; the windows then run through the checkpoint queue and the
run's notification arrives on the topic. boto3 from the dev virtualenv is all
it needs: no AWS CLI. Credentials and region come from the usual AWS chain
(AWS_PROFILE, AWS_REGION, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
)


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from exc


def _region() -> str | None:
    """AWS_REGION too (boto3 alone reads only AWS_DEFAULT_REGION and the profile)."""
    return os.environ.get("AWS_REGION", "").strip() or None


def stack_output(stack_name: str, key: str) -> str:
    stacks = boto3.client("cloudformation", region_name=_region()).describe_stacks(
        StackName=stack_name
    )["Stacks"]
    for output in stacks[0].get("Outputs", []):
        if output["OutputKey"] == key:
            return str(output["OutputValue"])
    raise SystemExit(f"stack {stack_name!r} has no output {key!r}: is it deployed?")


def _ids(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated ids, got {text!r}") from exc


def _texts(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--stack-name", default="wifi-export")
    p.add_argument(
        "--function",
        default=os.environ.get("FUNCTION_NAME") or None,
        help="the function's name (else FUNCTION_NAME, else the stack's FunctionName output)",
    )
    p.add_argument(
        "--event",
        type=argparse.FileType("rb"),
        help="send this event file as it is (events/*.json) instead of building one",
    )
    p.add_argument("--brand", type=int)
    p.add_argument("--start", type=_day, help="first day, inclusive")
    p.add_argument("--end", type=_day, help="last day, inclusive")
    selector = p.add_mutually_exclusive_group()
    selector.add_argument("--locations", type=_ids, help="chosen location ids, comma-separated")
    selector.add_argument("--references", type=_texts, help="chosen reference numbers")
    selector.add_argument("--zone", help="one zone id (a UUID)")
    option = p.add_mutually_exclusive_group()
    option.add_argument("--zero-fill", action="store_true", help="v4: every bucket, zeros as 0")
    option.add_argument(
        "--skip-unauthorized", action="store_true", help="v2: export what is allowed"
    )
    return p


def build_event(args: argparse.Namespace) -> dict[str, Any]:
    """The on-demand event of docs/contracts.md, "Events" (the function validates it)."""
    event: dict[str, Any] = {"brandId": args.brand, "startDate": args.start, "endDate": args.end}
    if args.locations:
        event["locations"] = args.locations
    if args.references:
        event["referenceNumbers"] = args.references
    if args.zone:
        event["zoneId"] = args.zone
    if args.zero_fill:
        event["zeroFill"] = True
    if args.skip_unauthorized:
        event["skipUnauthorized"] = True
    return event


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.event is None and None in (args.brand, args.start, args.end):
        p.error("--brand, --start and --end are required (or --event FILE)")
    if args.event is None and args.end < args.start:
        p.error("--end is before --start")

    try:
        return _invoke(args)
    except NoRegionError:
        return _fail("no AWS region configured: set AWS_REGION (or AWS_PROFILE with a region)")
    except NoCredentialsError:
        return _fail("no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID ...)")
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return _fail(
            f"AWS {exc.operation_name} failed: {error.get('Code')}: {error.get('Message', '')}"
            " (check STACK_NAME, AWS_REGION and AWS_PROFILE)"
        )
    except BotoCoreError as exc:
        return _fail(f"AWS: {exc} (check the network, AWS_REGION and AWS_PROFILE)")


def _fail(message: str) -> int:
    print(f"make invoke: {message}", file=sys.stderr)
    return 3


def _invoke(args: argparse.Namespace) -> int:
    function_name = args.function or stack_output(args.stack_name, "FunctionName")
    event = json.loads(args.event.read()) if args.event else build_event(args)
    # Synchronous, no client retry: a retried invoke would plan a second run.
    client = boto3.client(
        "lambda",
        region_name=_region(),
        config=Config(read_timeout=910, retries={"total_max_attempts": 1}),
    )
    print(f"invoking {function_name} with {json.dumps(event)}", file=sys.stderr)
    response = client.invoke(
        FunctionName=function_name,
        InvocationType="RequestResponse",
        Payload=json.dumps(event).encode(),
    )
    payload = response["Payload"].read().decode()
    try:
        print(json.dumps(json.loads(payload), indent=2))
    except ValueError:
        print(payload)
    if response.get("FunctionError"):
        print(f"function error: {response['FunctionError']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Serve the fake analytiks API until interrupted.

    python -m local.fake_analytiks --port 8080 --brands 1234:120,777:3 \
        --client demo-client:demo-secret --rate-429 0.1

The first line printed is the base URL (data at URL/wifi/json/v1..v4, token at
URL/oauth/token).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections import deque
from collections.abc import Collection, Sequence
from types import FrameType

from local.fake_analytiks.faults import Faults
from local.fake_analytiks.records import Quirks
from local.fake_analytiks.server import FakeAnalytiks


def _brands(text: str) -> dict[int, int]:
    brands: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        brand, _, count = part.partition(":")
        brands[int(brand)] = int(count or 1)
    return brands


def _client(text: str) -> tuple[str, tuple[str, Collection[int] | None]]:
    """``id:secret`` or ``id:secret:brand+brand`` (allowed brands)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError("expected CLIENT_ID:SECRET[:BRAND+BRAND...]")
    allowed = [int(b) for b in parts[2].split("+") if b] if len(parts) == 3 else None
    return parts[0], (parts[1], allowed)


def _pair(text: str) -> tuple[str, str]:
    """``NAME=VALUE``."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected NAME=VALUE")
    return name, value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m local.fake_analytiks", description=__doc__.split("\n")[0]
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port (default 8080)")
    p.add_argument("--brands", type=_brands, default={1234: 120, 777: 3}, help="BRAND:COUNT,...")
    p.add_argument(
        "--client", type=_client, action="append", help="ID:SECRET[:BRAND+BRAND] (repeat)"
    )
    p.add_argument("--page-size", type=int, default=50)
    p.add_argument("--bucket-minutes", type=int, default=60, choices=(15, 60))
    p.add_argument(
        "--extra-metric", action="append", default=[], help="unknown metric to add (repeat)"
    )
    p.add_argument("--token-ttl", type=int, default=86400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate-429", type=float, default=0.0)
    p.add_argument("--rate-5xx", type=float, default=0.0)
    p.add_argument("--rate-reset", type=float, default=0.0)
    p.add_argument("--rate-truncate", type=float, default=0.0)
    p.add_argument("--retry-after", type=float, default=1.0)
    p.add_argument(
        "--latency", type=float, default=0.0, help="seconds a data answer takes at least"
    )
    p.add_argument(
        "--rate-limit", type=float, default=None, help="data requests/s; above: 429 + Retry-After"
    )
    p.add_argument("--rate-limit-burst", type=float, default=None, help="(default: one second's)")
    p.add_argument(
        "--rate-limit-sliding", action="store_true", help="the limit holds in any sliding second"
    )
    p.add_argument("--cache-mb", type=int, default=512, help="rendered pages kept (MB)")
    p.add_argument("--compress-cache", action="store_true", help="keep them zlib-compressed")
    p.add_argument("--slow-seconds", type=float, default=5.0)
    p.add_argument("--revoke-after", type=int, default=None)
    p.add_argument("--fault", action="append", default=[], help="queue a data fault (repeat)")
    quirks = p.add_argument_group("quirks", "departures from the API document (all off)")
    quirks.add_argument("--utc-keys-for-local", action="store_true", help="local requests: ...Z")
    quirks.add_argument("--local-keys-for-utc", action="store_true", help="UTC requests: no Z")
    quirks.add_argument("--offset-keys", action="store_true", help="local requests: +02:00 keys")
    quirks.add_argument(
        "--zone", type=_pair, action="append", default=[], help="LOCATION=IANA zone (repeat)"
    )
    quirks.add_argument(
        "--record-field", type=_pair, action="append", default=[], help="NAME=VALUE (repeat)"
    )
    quirks.add_argument("--zero-values", action="store_true", help="v1-v3 keep zero values")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    faults = Faults(
        queue=deque(args.fault),
        rate_429=args.rate_429,
        rate_5xx=args.rate_5xx,
        rate_reset=args.rate_reset,
        rate_truncate=args.rate_truncate,
        retry_after=args.retry_after,
        latency=args.latency,
        slow_seconds=args.slow_seconds,
        revoke_after=args.revoke_after,
        rate_limit=args.rate_limit,
        rate_limit_burst=args.rate_limit_burst,
        rate_limit_sliding=args.rate_limit_sliding,
    )
    api = FakeAnalytiks(
        brands=args.brands,
        clients=dict(args.client) if args.client else None,
        page_size=args.page_size,
        bucket_minutes=args.bucket_minutes,
        extra_metrics=args.extra_metric,
        token_ttl=args.token_ttl,
        seed=args.seed,
        host=args.host,
        port=args.port,
        faults=faults,
        cache_bytes=args.cache_mb * 1024 * 1024,
        compress_cache=args.compress_cache,
        quirks=Quirks(
            utc_keys_for_local=args.utc_keys_for_local,
            local_keys_for_utc=args.local_keys_for_utc,
            offset_keys=args.offset_keys,
            zones={int(loc): zone for loc, zone in args.zone},
            record_fields=dict(args.record_field),
            zero_values=args.zero_values,
        ),
    )
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with api:
        print(api.url, flush=True)
        print(f"token endpoint: {api.token_url}", flush=True)
        print(f"brands: {api.brands}; clients: {', '.join(api.clients)}", flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Configuration: parsed and validated once per cold start into one typed object.

The variables and their defaults are in docs/contracts.md, "Configuration".
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

from exporter.errors import ConfigError

TimeBasis = Literal["utc", "local"]

_LOOPBACK_NAMES = {"localhost"}
MAX_HOPS_LIMIT: Final = 1_000


@dataclass(frozen=True, slots=True)
class Settings:
    secret_id: str
    bucket_name: str
    topic_arn: str
    queue_url: str
    data_prefix: str = "wifi/metrics"
    state_prefix: str = "wifi/_exports"
    brand_ids: tuple[int, ...] = ()
    lookback_days: int = 1
    time_basis: TimeBasis = "utc"
    window_days: int = 5
    api_url: str = "https://exports.analytiks.ai"
    token_url: str = "https://tokens.analytiks.ai"
    api_audience: str = "https://gql.analytiks.ai"
    time_safety_margin_ms: int = 60_000
    max_hops: int = 200
    max_receive_count: int = 5
    max_range_days: int = 3_660
    # Fan-out bounds of one event (docs/contracts.md, "Events"): brands, and
    # windows over all of its runs (days / WINDOW_DAYS x selection batches x brands).
    max_brands_per_event: int = 100
    max_windows_per_event: int = 10_000
    # The API rate budget of the whole deployment (docs/contracts.md, "Configuration"):
    # requests per second (None = unlimited), shared by at most `max_concurrency`
    # invocations at once (the event source mapping's ScalingConfig.MaximumConcurrency).
    api_max_rps: float | None = None
    max_concurrency: int = 5
    # The Parquet table's location (docs/contracts.md, "The Parquet table"), None
    # when it is turned off. `load_settings` turns it on unless PARQUET_ENABLED is
    # false; a Settings built by hand (unit tests) has it off unless it says so.
    parquet_prefix: str | None = None


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigError(f"{name}: expected an https:// URL, got {value!r}")
    # Plain HTTP would send the client secret and bearer tokens in clear text:
    # it is only accepted for the loopback fake API used by tests and the demo.
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(f"{name}: plain http:// is only allowed for loopback hosts, use https://")
    return value.rstrip("/")


def _prefix(name: str, value: str) -> str:
    cleaned = value.strip("/")
    if not cleaned or any(part in ("", ".", "..") for part in cleaned.split("/")):
        raise ConfigError(f"{name}: expected a key prefix like 'wifi/metrics', got {value!r}")
    return cleaned


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be between {low} and {high}, got {value}")
    return value


def _rate(env: Mapping[str, str], name: str, high: float) -> float | None:
    """A positive number of requests per second, or None when unset (unlimited)."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"{name}: expected a number of requests per second, got {raw!r}"
        ) from None
    if not 0 < value <= high:  # also refuses nan and inf
        raise ConfigError(f"{name}: must be above 0 and at most {high:g}, got {raw!r}")
    return value


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name}: required environment variable is missing or empty")
    return value


def _brand_ids(raw: str) -> tuple[int, ...]:
    brands: list[int] = []
    for part in raw.split(","):
        item = part.strip()
        if not item:
            continue
        # ASCII digits only: isdigit() and int() also take other scripts' digits.
        if not (item.isascii() and item.isdigit()) or not 0 < int(item) <= 2**63 - 1:
            raise ConfigError(
                f"BRAND_IDS: expected comma-separated positive integers, got {item!r}"
            )
        if int(item) not in brands:
            brands.append(int(item))
    return tuple(brands)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false"):
        raise ConfigError(f"{name}: expected 'true' or 'false', got {raw!r}")
    return raw == "true"


def _disjoint(name: str, prefix: str, other_name: str, other: str) -> None:
    """Two locations that must not contain each other (Athena would read one as the other)."""
    if (prefix + "/").startswith(other + "/") or (other + "/").startswith(prefix + "/"):
        raise ConfigError(f"{name}: must not overlap {other_name}")


def _parquet_prefix(env: Mapping[str, str], data_prefix: str, state_prefix: str) -> str | None:
    if not _flag(env, "PARQUET_ENABLED", True):
        return None
    prefix = _prefix("PARQUET_PREFIX", env.get("PARQUET_PREFIX", "") or "wifi/metrics_parquet")
    # Inside the JSON table's location, the JSON table would read the Parquet objects.
    _disjoint("PARQUET_PREFIX", prefix, "DATA_PREFIX", data_prefix)
    _disjoint("PARQUET_PREFIX", prefix, "STATE_PREFIX", state_prefix)
    return prefix


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the environment; raises ConfigError naming the variable."""
    env = os.environ if env is None else env
    basis = env.get("TIME_BASIS", "utc").strip().lower() or "utc"
    if basis not in ("utc", "local"):
        raise ConfigError(f"TIME_BASIS: expected 'utc' or 'local', got {basis!r}")
    data_prefix = _prefix("DATA_PREFIX", env.get("DATA_PREFIX", "wifi/metrics"))
    state_prefix = _prefix("STATE_PREFIX", env.get("STATE_PREFIX", "wifi/_exports"))
    # Staging under the table location would make Athena read half-done runs.
    if (state_prefix + "/").startswith(data_prefix + "/") or (data_prefix + "/").startswith(
        state_prefix + "/"
    ):
        raise ConfigError("STATE_PREFIX: must not overlap DATA_PREFIX (Athena would read staging)")
    return Settings(
        secret_id=_required(env, "SECRET_ID"),
        bucket_name=_required(env, "BUCKET_NAME"),
        topic_arn=_required(env, "TOPIC_ARN"),
        queue_url=_required(env, "QUEUE_URL"),
        data_prefix=data_prefix,
        state_prefix=state_prefix,
        brand_ids=_brand_ids(env.get("BRAND_IDS", "")),
        lookback_days=_int(env, "LOOKBACK_DAYS", 1, 1, 366),
        time_basis="local" if basis == "local" else "utc",
        window_days=_int(env, "WINDOW_DAYS", 5, 1, 5),
        api_url=_url("API_URL", env.get("API_URL", "") or "https://exports.analytiks.ai"),
        token_url=_url("TOKEN_URL", env.get("TOKEN_URL", "") or "https://tokens.analytiks.ai"),
        api_audience=env.get("API_AUDIENCE", "").strip() or "https://gql.analytiks.ai",
        time_safety_margin_ms=_int(env, "TIME_SAFETY_MARGIN_MS", 60_000, 0, 900_000),
        # At most 1,000 (the template's MaxHops MaxValue): each hop is an
        # invocation of up to the function timeout.
        max_hops=_int(env, "MAX_HOPS", 200, 1, MAX_HOPS_LIMIT),
        max_receive_count=_int(env, "MAX_RECEIVE_COUNT", 5, 1, 1_000),
        max_range_days=_int(env, "MAX_RANGE_DAYS", 3_660, 1, 36_600),
        max_brands_per_event=_int(env, "MAX_BRANDS_PER_EVENT", 100, 1, 10_000),
        max_windows_per_event=_int(env, "MAX_WINDOWS_PER_EVENT", 10_000, 1, 100_000),
        api_max_rps=_rate(env, "API_MAX_RPS", 100_000.0),
        # 1 is below the event source mapping's minimum (2) but useful locally.
        max_concurrency=_int(env, "MAX_CONCURRENCY", 5, 1, 1_000),
        parquet_prefix=_parquet_prefix(env, data_prefix, state_prefix),
    )

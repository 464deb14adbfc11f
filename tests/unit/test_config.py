from __future__ import annotations

import pytest

from exporter.config import load_settings
from exporter.errors import ConfigError

REQUIRED = {
    "SECRET_ID": "wifi-export/analytiks",
    "BUCKET_NAME": "bucket",
    "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:runs",
    "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
}


def test_defaults() -> None:
    settings = load_settings(REQUIRED)
    assert settings.data_prefix == "wifi/metrics"
    assert settings.state_prefix == "wifi/_exports"
    assert settings.brand_ids == ()
    assert (settings.lookback_days, settings.window_days, settings.time_basis) == (1, 5, "utc")
    assert settings.api_url == "https://exports.analytiks.ai"
    assert settings.token_url == "https://tokens.analytiks.ai"
    assert settings.api_audience == "https://gql.analytiks.ai"
    assert settings.time_safety_margin_ms == 60_000
    # No rate budget unless asked for; the mapping's concurrency as the template sets it.
    assert (settings.api_max_rps, settings.max_concurrency) == (None, 5)


def test_rate_budget_is_parsed() -> None:
    settings = load_settings({**REQUIRED, "API_MAX_RPS": " 12.5 ", "MAX_CONCURRENCY": "8"})
    assert (settings.api_max_rps, settings.max_concurrency) == (12.5, 8)
    # The template passes an empty string for "no budget".
    assert load_settings({**REQUIRED, "API_MAX_RPS": ""}).api_max_rps is None


def test_values_are_parsed() -> None:
    settings = load_settings(
        {
            **REQUIRED,
            "BRAND_IDS": " 12, 7,12 ",
            "TIME_BASIS": "LOCAL",
            "WINDOW_DAYS": "3",
            "DATA_PREFIX": "/lake/wifi/",
            "API_URL": "http://127.0.0.1:8080/",
        }
    )
    assert settings.brand_ids == (12, 7)
    assert settings.time_basis == "local"
    assert settings.window_days == 3
    assert settings.data_prefix == "lake/wifi"
    assert settings.api_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"SECRET_ID": ""}, "SECRET_ID"),
        ({"BUCKET_NAME": "  "}, "BUCKET_NAME"),
        ({"TOPIC_ARN": ""}, "TOPIC_ARN"),
        ({"QUEUE_URL": ""}, "QUEUE_URL"),
        ({"BRAND_IDS": "12,abc"}, "BRAND_IDS"),
        ({"BRAND_IDS": "0"}, "BRAND_IDS"),
        ({"LOOKBACK_DAYS": "two"}, "LOOKBACK_DAYS"),
        ({"LOOKBACK_DAYS": "0"}, "LOOKBACK_DAYS"),
        ({"WINDOW_DAYS": "6"}, "WINDOW_DAYS"),
        ({"TIME_BASIS": "gmt"}, "TIME_BASIS"),
        ({"API_URL": "ftp://x"}, "API_URL"),
        ({"API_URL": "http://exports.analytiks.ai"}, "API_URL"),
        ({"TOKEN_URL": "http://10.0.0.1/token"}, "TOKEN_URL"),
        ({"DATA_PREFIX": "a/../b"}, "DATA_PREFIX"),
        ({"STATE_PREFIX": "wifi/metrics/state"}, "STATE_PREFIX"),
        ({"TIME_SAFETY_MARGIN_MS": "-1"}, "TIME_SAFETY_MARGIN_MS"),
        ({"MAX_HOPS": "0"}, "MAX_HOPS"),
        ({"API_MAX_RPS": "0"}, "API_MAX_RPS"),
        ({"API_MAX_RPS": "-3"}, "API_MAX_RPS"),
        ({"API_MAX_RPS": "ten"}, "API_MAX_RPS"),
        ({"API_MAX_RPS": "nan"}, "API_MAX_RPS"),
        ({"API_MAX_RPS": "inf"}, "API_MAX_RPS"),
        ({"API_MAX_RPS": "100001"}, "API_MAX_RPS"),
        ({"MAX_CONCURRENCY": "0"}, "MAX_CONCURRENCY"),
        ({"MAX_CONCURRENCY": "1001"}, "MAX_CONCURRENCY"),
        ({"MAX_CONCURRENCY": "five"}, "MAX_CONCURRENCY"),
    ],
)
def test_bad_settings_name_the_variable(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({**REQUIRED, **overrides})
    message = str(info.value)
    assert message.startswith(named + ":")
    assert "\n" not in message


def test_missing_required_variable() -> None:
    env = dict(REQUIRED)
    del env["QUEUE_URL"]
    with pytest.raises(ConfigError, match=r"^QUEUE_URL: required"):
        load_settings(env)

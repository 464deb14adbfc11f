"""Issue 22: every pattern that validates input is ASCII-only and matched in full,
and the queue whose records are checkpoints is derived from QUEUE_URL."""

from __future__ import annotations

import pytest

from exporter.config import load_settings
from exporter.errors import ConfigError, InvalidEvent
from exporter.events import from_queue, queue_arn
from exporter.run.keys import run_id_of_data_object
from exporter.run.records import is_run_id
from exporter.selection import parse_selection

RUN_ID = "20230701T033000000Z-b1234-9f2c41d0"


@pytest.mark.parametrize(
    ("url", "arn"),
    [
        (
            "https://sqs.eu-west-1.amazonaws.com/123456789012/wifi-export-checkpoints",
            "arn:aws:sqs:eu-west-1:123456789012:wifi-export-checkpoints",
        ),
        (
            "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q",
            "arn:aws-cn:sqs:cn-north-1:123456789012:q",
        ),
        (
            "https://sqs.us-gov-west-1.amazonaws.com/123456789012/q",
            "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:q",
        ),
        ("https://ap-south-1.queue.amazonaws.com/1/q", "arn:aws:sqs:ap-south-1:1:q"),
        # Local endpoints name no region: the function's own.
        ("http://localhost:4566/000000000000/q", "arn:aws:sqs:us-east-1:000000000000:q"),
        (
            "http://sqs.us-east-2.localhost.localstack.cloud:4566/000000000000/q",
            "arn:aws:sqs:us-east-2:000000000000:q",
        ),
    ],
)
def test_the_queue_arn_is_derived_from_its_url(url: str, arn: str) -> None:
    assert queue_arn(url, "us-east-1") == arn
    assert from_queue(arn, queue_arn(url, "us-east-1"))


@pytest.mark.parametrize(
    "source", [None, 5, "", "arn:aws:sqs:us-east-1:1:q2", "arn:aws:sqs:us-east-1:1:q\n"]
)
def test_any_other_source_is_not_the_queue(source: object) -> None:
    assert not from_queue(source, "arn:aws:sqs:us-east-1:1:q")


@pytest.mark.parametrize(
    "run_id",
    [
        RUN_ID + "\n",
        RUN_ID.replace("2023", "\u0662\u0660\u0662\u0663"),
        RUN_ID.replace("1234", "\uff11"),
    ],
)
def test_run_ids_are_ascii_and_whole(run_id: str) -> None:
    assert not is_run_id(run_id)
    assert run_id_of_data_object(f"p/dt=2023-07-01/{run_id}-w0-s0.json.gz") is None


def test_a_run_id_is_still_a_run_id() -> None:
    assert is_run_id(RUN_ID)
    assert run_id_of_data_object(f"p/dt=2023-07-01/{RUN_ID}-w0-s0.json.gz") == RUN_ID


@pytest.mark.parametrize("brands", ["\u0661\u0662", "12,\uff13", "9223372036854775808"])
def test_brand_ids_are_ascii_bigints(brands: str) -> None:
    env = {
        "BUCKET_NAME": "b",
        "TOPIC_ARN": "arn:aws:sns:us-east-1:1:t",
        "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q",
        "SECRET_ID": "s",
        "API_URL": "https://exports.analytiks.ai",
        "TOKEN_URL": "https://auth.analytiks.ai/oauth/token",
        "BRAND_IDS": brands,
    }
    with pytest.raises(ConfigError, match="BRAND_IDS"):
        load_settings(env)


def test_a_reference_number_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="referenceNumbers"):
        parse_selection({"brandId": 1, "referenceNumbers": ["A-12\n"]})


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\x1b[2Jb", "ab"),
        ("x\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\y", "xlinky"),
        ("\x1b]0;title\x07ok", "ok"),
        ("\x9b31mred\x9d8;;u\x9c!", "red!"),
        ("bell\x07 tab\t nul\x00 del\x7f", "bell tab nul del"),
        ("\u202eevil\u2066", "evil"),
        ("[bold]x[/] é 中", "[bold]x[/] é 中"),
    ],
)
def test_printable_removes_what_a_terminal_would_act_on(raw: str, shown: str) -> None:
    from exporter.redaction import printable  # noqa: PLC0415

    assert printable(raw) == shown


@pytest.mark.parametrize(
    ("requested", "named", "kept"),
    [
        ((1, 2), [2, 3, "\x1b[2J", True, 2], (2,)),
        (("A-1", "B-2"), ["B-2", "C-3", 77, 2**63, -1], ("B-2", 77)),
        (("A-1",), [5, 6, 7], (5,)),  # never more than were asked for
    ],
)
def test_refused_ids_are_ids_the_batch_asked_for(
    requested: tuple[int | str, ...], named: list[object], kept: tuple[int | str, ...]
) -> None:
    from exporter.api_answers import refused_ids  # noqa: PLC0415

    assert refused_ids({"locations": named}, requested) == kept

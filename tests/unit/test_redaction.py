"""One redaction function: secrets out of logs, errors, records and notifications;
error text bounded (docs/reliability.md, "Secrets and hostile answers")."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from exporter import redaction
from exporter.errors import ApiRejected, MalformedResponse
from exporter.observability import logger
from exporter.redaction import (
    MAX_ERROR_CHARS,
    REDACTED,
    describe,
    error_text,
    redact,
    redact_value,
)

TOKEN = "eyJhbGciOi.J9-payload_part~x+y/z=="
# A client secret whose characters JSON and repr escape.
SECRET = 'pa"ss\\wo\nrd-\u00e9\u2028-k3y'


def forms(secret: str) -> list[str]:
    """The secret as a search would find it: raw, JSON-escaped, repr-escaped."""
    return [
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    ]


@pytest.fixture(autouse=True)
def known() -> Iterator[None]:
    redaction.forget()
    redaction.remember_client_secret(SECRET)
    redaction.remember_token(TOKEN)
    yield
    redaction.forget()


def test_redact_replaces_every_known_secret() -> None:
    text = f"Authorization: Bearer {TOKEN}; body {SECRET}; again {TOKEN}"
    out = redact(text)
    assert out == f"Authorization: Bearer {REDACTED}; body {REDACTED}; again {REDACTED}"


def test_a_secret_containing_another_is_replaced_whole() -> None:
    short = TOKEN[:12]
    redaction.remember_token(short)
    assert redact(f"<{TOKEN}>") == f"<{REDACTED}>"
    assert redact(f"<{short}>") == f"<{REDACTED}>"


def test_forget_and_an_empty_registry() -> None:
    redaction.forget()
    assert redact(f"x {TOKEN}") == f"x {TOKEN}"
    redaction.remember_token("")  # nothing to redact: ignored
    assert redact("anything") == "anything"


def test_old_tokens_are_evicted_but_client_secrets_are_kept() -> None:
    for n in range(600):
        redaction.remember_token(f"token-number-{n:04d}-xxxxxxxx")
    assert redact("token-number-0599-xxxxxxxx") == REDACTED
    assert redact("token-number-0000-xxxxxxxx") == "token-number-0000-xxxxxxxx"
    assert redact(SECRET) == REDACTED


def test_redact_value_walks_keys_values_and_foreign_objects() -> None:
    class Echo:
        def __str__(self) -> str:
            return f"echo {TOKEN}"

    value = {TOKEN: [SECRET, 1, None, True, 2.5, ("t", TOKEN)], "obj": Echo()}
    out = redact_value(value)
    assert out == {
        REDACTED: [REDACTED, 1, None, True, 2.5, ["t", REDACTED]],
        "obj": "echo [redacted]",
    }
    dumped = json.dumps(out)
    for form in forms(SECRET) + forms(TOKEN):
        assert form not in dumped


def test_error_text_redacts_before_it_cuts_a_straddling_secret() -> None:
    text = "x" * 160 + TOKEN + "y" * 100
    out = error_text(text, 200)
    # Redacted whole first (270 characters), then cut to 200 with the note.
    assert out == "x" * 160 + REDACTED + "… [cut, 270 characters in all]"
    assert TOKEN[:6] not in out and len(out) == 200
    # Cutting first and redacting after (the old order) leaks the token's first 10 characters.
    assert TOKEN[:10] in redact(text[:170])


def test_error_text_is_one_bounded_line() -> None:
    long = "line one\r\nInjected: header\n" + "z" * 5_000
    out = error_text(long)
    assert "\n" not in out and "\r" not in out
    assert out.startswith("line one Injected: header z")
    assert len(out) == MAX_ERROR_CHARS
    assert out.endswith("… [cut, 5,026 characters in all]")  # CR LF: one space
    assert error_text(out) == out  # bounding bounded text changes nothing
    assert error_text("short") == "short"


def test_describe_keeps_our_errors_and_only_names_foreign_ones() -> None:
    ours = describe(MalformedResponse(f"v3 answer echoed {TOKEN}"))
    assert ours == f"MalformedResponse: v3 answer echoed {REDACTED}"
    assert len(describe(ApiRejected("x" * 10_000))) == MAX_ERROR_CHARS
    # http.client's refusal of a header quotes the header: the text is withheld.
    leaky = ValueError(f"Invalid header value b'Bearer {TOKEN}\\r\\nX: 1'")
    assert describe(leaky) == "ValueError"
    assert describe(KeyError(SECRET)) == "KeyError"


def test_describe_names_an_aws_error_code_but_nothing_else() -> None:
    class ClientError(Exception):
        def __init__(self, code: str) -> None:
            super().__init__(f"An error occurred ({code}) with {TOKEN}")
            self.response = {"Error": {"Code": code, "Message": TOKEN}}

    assert describe(ClientError("SlowDown")) == "ClientError (SlowDown)"
    assert describe(ClientError("Bad code\n" + TOKEN)) == "ClientError"


def test_the_logger_redacts_messages_fields_and_tracebacks(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()  # the Powertools handler's output, as Lambda would ship it
    monkeypatch.setattr(logger.registered_handler, "stream", stream)
    try:
        raise ValueError(f"Invalid header value b'Bearer {TOKEN}' and {SECRET}")
    except ValueError:
        logger.exception(
            "with %s in the arguments",
            SECRET,
            extra={"error": f"echo {TOKEN}", "nested": {"k": [SECRET], TOKEN: 1}},
        )
    logger.info({"message": f"a dict message {TOKEN}"})
    out = stream.getvalue()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["level"] for line in lines] == ["ERROR", "INFO"]
    first = lines[0]
    assert first["message"] == f"with {REDACTED} in the arguments"
    assert first["error"] == f"echo {REDACTED}"
    assert first["nested"] == {"k": [REDACTED], REDACTED: 1}
    assert REDACTED in first["exception"]
    assert REDACTED in json.dumps(first["stack_trace"])
    # Whatever else listens to the records (here: pytest's capture) sees them redacted too.
    captured = caplog.text + "".join(
        f"{r.getMessage()} {vars(r).get('error')} {vars(r).get('nested')}" for r in caplog.records
    )
    for form in forms(SECRET) + forms(TOKEN):
        assert form not in out
        assert form not in captured

"""Exception types, classified by what the run should do about them.

See docs/contracts.md, "Failure rules".
"""

from __future__ import annotations


class ExportError(Exception):
    """Base of every error the exporter raises on purpose."""


class ConfigError(ExportError):
    """A missing or malformed environment variable: fails the cold start."""


class PermanentError(ExportError):
    """Retrying cannot help: the run is marked failed and notified once."""


class InvalidEvent(PermanentError):
    """An event we cannot act on; nothing is written."""


class InvalidTask(InvalidEvent):
    """A queue message that is not ours, or was tampered with: dropped, never retried."""


class ApiRejected(PermanentError):
    """The API refused the request (400, or 401 for the brand after a fresh token)."""


class MalformedResponse(PermanentError):
    """The API answered with something the documentation does not allow."""


class TransientError(ExportError):
    """Worth retrying later (throttling, 5xx, resets, timeouts, truncated bodies)."""


class Throttled(TransientError):
    """The API kept answering 429, or asked for a longer wait than an invocation should
    sleep: the step backs off through the queue (a delayed checkpoint) instead.

    `retry_after_s` is the API's Retry-After (uncapped), or our own backoff without one.
    """

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class OutOfTime(TransientError):
    """No request was sent: the invocation's time budget no longer allows one.

    Not a failure of the API: a step that already walked pages checkpoints
    here as planned (logged at INFO), and the next invocation goes on.
    """


class BasisMismatch(MalformedResponse):
    """The API answered a request in the other time basis than the one asked for.

    Each basis is a dataset of its own (docs/decisions.md, "One dataset per time
    basis"): such rows would mean other hours than their partition's, so the run
    fails at the first such page and commits nothing.
    """
